-- Points and tier of every customer as of the run's date.
with

customers as (
    select customer_id, first_registered_at from core.customers
    -- People erased at their request: their pseudonymous id, balance closed to 0 by the ledger.
    union all
    select distinct erased_customer_id, cast(null as timestamp) from privacy.erased_records
),
ledger as (select * from loyalty.ledger),
lots as (select * from loyalty.lot_expiry),
debits as (select * from loyalty.debits),
tier_history as (select * from loyalty.tier_history),
qualifying_events as (select * from loyalty.qualifying_events),
tiers as (select * from loyalty.program_tiers),
settings as (select * from loyalty.program_settings),

as_of as (
    select cast(getvariable('as_of') as timestamp) + interval 1 day as ends_at
),

points as (
    select
        customer_id,
        sum(points) as points_balance,
        sum(points) filter (where entry_type in ('earn', 'bonus', 'adjust')) as points_earned,
        -sum(points) filter (where entry_type = 'redeem') as points_redeemed,
        -sum(points) filter (where entry_type = 'reverse') as points_reversed,
        -sum(points) filter (where entry_type = 'expire') as points_expired
    from ledger
    group by customer_id
),

-- What is left of a lot is what the customer's spent and expired points have not reached.
spent_or_expired as (
    select customer_id, -sum(points) as points_out
    from ledger
    where entry_type in ('redeem', 'reverse', 'expire')
    group by customer_id
),

expiring as (
    select
        lots.customer_id,
        sum(greatest(0, least(lots.points, lots.earned_through - coalesce(spent_or_expired.points_out, 0))))
            as points_expiring_next_30_days
    from lots
    cross join as_of
    left join spent_or_expired using (customer_id)
    where lots.expires_at >= as_of.ends_at and lots.expires_at < as_of.ends_at + interval 30 day
    group by lots.customer_id
),

rejections as (
    select customer_id, count(*) as rejected_redemptions
    from debits
    where status = 'rejected'
    group by customer_id
),

qualifying as (
    select
        customer_id,
        sum(qualifying_spend) as qualifying_spend,
        sum(base_points) as qualifying_points
    from qualifying_events, as_of
    where occurred_at < as_of.ends_at and counts_until >= as_of.ends_at
    group by customer_id
),

current_tiers as (
    select customer_id, tier_rank, valid_from
    from tier_history
    where valid_to is null
),

standing as (
    select
        customers.customer_id,
        coalesce(current_tiers.tier_rank, 1) as tier_rank,
        cast(coalesce(current_tiers.valid_from, customers.first_registered_at) as date) as tier_since,
        cast(greatest(coalesce(qualifying.qualifying_spend, 0), 0) as decimal(18, 2)) as qualifying_spend,
        cast(greatest(coalesce(qualifying.qualifying_points, 0), 0) as bigint) as qualifying_points
    from customers
    left join current_tiers using (customer_id)
    left join qualifying using (customer_id)
)

select
    standing.customer_id,
    cast(coalesce(points.points_balance, 0) as bigint) as points_balance,
    cast(coalesce(points.points_earned, 0) as bigint) as points_earned,
    cast(coalesce(points.points_redeemed, 0) as bigint) as points_redeemed,
    cast(coalesce(points.points_reversed, 0) as bigint) as points_reversed,
    cast(coalesce(points.points_expired, 0) as bigint) as points_expired,
    cast(coalesce(expiring.points_expiring_next_30_days, 0) as bigint) as points_expiring_next_30_days,
    coalesce(rejections.rejected_redemptions, 0) as rejected_redemptions,
    tiers.tier,
    standing.tier_since,
    standing.qualifying_spend,
    standing.qualifying_points,
    next_tiers.tier as next_tier,
    case when settings.qualify_on = 'spend'
        then cast(next_tiers.threshold - standing.qualifying_spend as decimal(18, 2)) end as spend_to_next_tier,
    case when settings.qualify_on = 'points'
        then cast(ceil(next_tiers.threshold - standing.qualifying_points) as bigint) end as points_to_next_tier
from standing
cross join settings
join tiers on tiers.tier_rank = standing.tier_rank
left join tiers as next_tiers on next_tiers.tier_rank = standing.tier_rank + 1
left join points using (customer_id)
left join expiring using (customer_id)
left join rejections using (customer_id)
order by customer_id
