-- Every credit is a lot of points that expires on its own date, and debits spend the
-- oldest lots first (FIFO), so expiry only takes what was not spent. Lots expire in the
-- order they were earned (one expiry period for all), which gives a closed form:
--   expired through lot i = max(0, max over lots j <= i of (earned_through_j - debited_before_j))
-- where earned_through_j is the customer's credits through lot j and debited_before_j the
-- debits applied before lot j expires. Built for the customers in
-- loyalty.customers_to_settle (all of them once debits are settled), and only for lots
-- that expire by 30 days after the as-of date: later ones neither expire in the ledger
-- nor count as expiring soon, and being last in spending order, they change no earlier lot.
with

settling as (select customer_id from loyalty.customers_to_settle),
movements as (select * from loyalty.point_movements),
debits as (select * from loyalty.debits),

lots as (
    select
        movements.customer_id, movements.entry_key, movements.source, movements.source_event_id,
        movements.points, movements.occurred_at, movements.expires_at, movements.credited_through as earned_through
    from movements
    semi join settling using (customer_id)
    where movements.points > 0
        and movements.expires_at < cast(getvariable('as_of') as timestamp) + interval 31 day
),

-- Pending debits count in full: until one is rejected, every earlier one stands.
debited as (
    select customer_id, occurred_at,
           sum(sum(coalesce(applied_points, requested_points))) over (
               partition by customer_id order by occurred_at rows unbounded preceding
           ) as debited_through
    from debits
    semi join settling using (customer_id)
    group by customer_id, occurred_at
),

-- A debit at the very moment a lot expires comes after the expiry.
at_expiry as (
    select lots.*, coalesce(debited.debited_through, 0) as debited_before_expiry
    from lots
    asof left join debited
        on debited.customer_id = lots.customer_id
        and lots.expires_at > debited.occurred_at
),

-- Both windows share one ordering, so DuckDB sorts the lots once: expired_points is what
-- expired through this lot adds to expired through the one before (0 before the first).
expired as (
    select *,
           greatest(0, max(earned_through - debited_before_expiry) over (spending_order rows unbounded preceding)) as expired_through,
           greatest(0, max(earned_through - debited_before_expiry) over (
               spending_order rows between unbounded preceding and 1 preceding
           )) as expired_before
    from at_expiry
    window spending_order as (partition by customer_id order by occurred_at, entry_key)
)

select
    customer_id,
    entry_key,
    source,
    source_event_id,
    points,
    occurred_at,
    expires_at,
    cast(earned_through as bigint) as earned_through,
    cast(debited_before_expiry as bigint) as debited_before_expiry,
    cast(expired_through as bigint) as expired_through,
    cast(expired_through - expired_before as bigint) as expired_points
from expired
