-- Every buying customer's purchase history in the shape lifetime-value models take.
-- Purchases are counted per day (several on one day are one transaction), as the
-- BG/NBD literature does; times are in weeks; the first day's spend is left out of the
-- average repeat value, which is what the Gamma-Gamma model explains.
with

events as (select * from core.events),

purchase_days as (
    select customer_id, occurred_on, sum(amount) as amount, list(distinct channel) as channels
    from events
    where is_completed_purchase
        and customer_id is not null
        and occurred_on <= getvariable('as_of')
    group by customer_id, occurred_on
),

summarized as (
    select
        customer_id,
        min(occurred_on) as first_purchase_on,
        max(occurred_on) as last_purchase_on,
        count(*) as purchase_days,
        sum(amount) as historical_value,
        arg_min(amount, occurred_on) as first_day_amount
    from purchase_days
    group by customer_id
)

select
    customer_id,
    first_purchase_on,
    last_purchase_on,
    purchase_days,
    purchase_days - 1 as frequency,
    date_diff('day', first_purchase_on, last_purchase_on) / 7.0 as recency_weeks,
    date_diff('day', first_purchase_on, getvariable('as_of')) / 7.0 as age_weeks,
    cast(historical_value as decimal(18, 2)) as historical_value,
    case when purchase_days > 1
        then cast((historical_value - first_day_amount) / (purchase_days - 1) as double) end as average_repeat_value
from summarized
