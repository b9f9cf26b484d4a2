-- One row per customer with their RFM scores and segment as of the run's date.
-- Scores are quintiles by percent rank over customers who bought (ties share a score):
-- 5 is the most recent / most frequent / highest spending fifth. The named segment is
-- the first rule of loyalty.program_rfm_segments whose recency and frequency-monetary
-- ranges hold the customer; customers without a purchase are 'Prospect'.
with

customers as (select customer_id from core.customers),
events as (select * from core.events),
rules as (select * from loyalty.program_rfm_segments),

purchases as (
    select customer_id, occurred_at, amount
    from events
    where is_completed_purchase
        and customer_id is not null
        and occurred_on <= getvariable('as_of')
),

rfm_values as (
    select
        customer_id,
        date_diff('day', cast(max(occurred_at) as date), getvariable('as_of')) as recency_days,
        count(*) as frequency,
        cast(sum(amount) as decimal(18, 2)) as monetary
    from purchases
    group by customer_id
),

rfm_scores as (
    select
        *,
        least(5, 1 + floor(5 * percent_rank() over (order by recency_days desc)))::integer as r_score,
        least(5, 1 + floor(5 * percent_rank() over (order by frequency)))::integer as f_score,
        least(5, 1 + floor(5 * percent_rank() over (order by monetary)))::integer as m_score
    from rfm_values
),

fm_scores as (
    select *, cast(round((f_score + m_score) / 2, 0) as integer) as fm_score
    from rfm_scores
),

named as (
    select
        fm_scores.customer_id,
        arg_min(rules.segment, rules.priority) as rfm_segment
    from fm_scores
    join rules
        on fm_scores.r_score between rules.r_min and rules.r_max
        and fm_scores.fm_score between rules.fm_min and rules.fm_max
    group by fm_scores.customer_id
)

select
    customers.customer_id,
    fm_scores.recency_days,
    coalesce(fm_scores.frequency, 0) as frequency,
    coalesce(fm_scores.monetary, 0) as monetary,
    fm_scores.r_score,
    fm_scores.f_score,
    fm_scores.m_score,
    fm_scores.r_score::varchar || fm_scores.f_score::varchar || fm_scores.m_score::varchar as rfm_cell,
    coalesce(named.rfm_segment, 'Prospect') as rfm_segment
from customers
left join fm_scores using (customer_id)
left join named using (customer_id)
order by customer_id
