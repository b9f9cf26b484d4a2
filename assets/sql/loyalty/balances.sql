-- Points balance and tier of every customer as of the run's date. The tier is the highest
-- whose threshold the qualifying spend of the last 12 months reaches.
with

customers as (select customer_id from core.customers),
ledger as (select * from loyalty.ledger),
tiers as (select * from loyalty.program_tiers),

points as (
    select customer_id, cast(sum(points) as bigint) as points_balance
    from ledger
    group by customer_id
),

spend as (
    select customer_id, sum(qualifying_amount) as qualifying_spend_12m
    from ledger
    where occurred_at > getvariable('as_of') - interval 12 month
    group by customer_id
),

standing as (
    select
        customers.customer_id,
        coalesce(points.points_balance, 0) as points_balance,
        cast(coalesce(spend.qualifying_spend_12m, 0) as decimal(18, 2)) as qualifying_spend_12m
    from customers
    left join points using (customer_id)
    left join spend using (customer_id)
),

tiered as (
    select
        standing.*,
        arg_max(tiers.tier, tiers.min_qualifying_spend) as tier,
        max(tiers.tier_rank) as tier_rank
    from standing
    join tiers on tiers.min_qualifying_spend <= standing.qualifying_spend_12m
    group by all
),

with_next as (
    select
        tiered.*,
        next_tier.tier as next_tier,
        cast(next_tier.min_qualifying_spend - tiered.qualifying_spend_12m as decimal(18, 2)) as spend_to_next_tier
    from tiered
    left join tiers as next_tier on next_tier.tier_rank = tiered.tier_rank + 1
)

select
    customer_id,
    points_balance,
    tier,
    qualifying_spend_12m,
    next_tier,
    spend_to_next_tier
from with_next
order by customer_id
