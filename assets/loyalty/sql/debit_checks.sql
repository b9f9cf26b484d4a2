-- One settling round of loyalty.debits (see assets/loyalty/settling.py). For each debit of the
-- customers still settling: the points available just before it (credits so far, minus
-- expired, minus earlier debits), and a decision for the pending ones up to the first
-- that asks for more than is available. Debits after that one wait for the next round,
-- because the decision changes what is available to them.
with

customers_to_settle as (select customer_id from loyalty.customers_to_settle),
debits as (select * from loyalty.debits),
movements as (select * from loyalty.point_movements),
lots as (select * from loyalty.lot_expiry),

-- Only customers with debits have anything to decide (the first round lists everybody).
settling as (
    select customer_id from customers_to_settle
    semi join debits using (customer_id)
),

credited as (
    select movements.customer_id, movements.occurred_at, max(movements.credited_through) as credited_through
    from movements
    semi join settling using (customer_id)
    where movements.points > 0
    group by all
),

expired as (
    select lots.customer_id, lots.expires_at, max(lots.expired_through) as expired_through
    from lots
    semi join settling using (customer_id)
    group by all
),

ordered as (
    select
        debits.*,
        coalesce(sum(coalesce(debits.applied_points, debits.requested_points)) over (
            partition by debits.customer_id order by debits.occurred_at, debits.entry_id
            rows between unbounded preceding and 1 preceding
        ), 0) as debited_before
    from debits
    semi join settling using (customer_id)
),

-- Credits at the debit's moment count; so do expiries at that moment.
checked as (
    select
        ordered.*,
        coalesce(credited.credited_through, 0) - coalesce(expired.expired_through, 0) - ordered.debited_before as available
    from ordered
    asof left join credited
        on credited.customer_id = ordered.customer_id and ordered.occurred_at >= credited.occurred_at
    asof left join expired
        on expired.customer_id = ordered.customer_id and ordered.occurred_at >= expired.expires_at
),

first_violations as (
    select customer_id, occurred_at as violation_at, entry_id as violation_id
    from checked
    where status = 'pending' and requested_points > available
    qualify row_number() over (partition by customer_id order by occurred_at, entry_id) = 1
),

decided as (
    select
        checked.*,
        case
            when checked.status <> 'pending' then null
            when first_violations.violation_id is null
                or checked.occurred_at < first_violations.violation_at
                or (checked.occurred_at = first_violations.violation_at and checked.entry_id < first_violations.violation_id)
                then 'applied'
            when checked.entry_id = first_violations.violation_id
                then case when checked.entry_type = 'redeem' then 'rejected' else 'capped' end
        end as decision
    from checked
    left join first_violations using (customer_id)
)

select
    entry_id,
    customer_id,
    cast(available as bigint) as available_before,
    decision,
    case decision
        when 'applied' then requested_points
        when 'rejected' then 0
        when 'capped' then greatest(available, 0)
    end as applied_points,
    case decision
        when 'rejected' then format('asks {} points, {} available', requested_points, available)
        when 'capped' then format('takes back {} points, {} available', requested_points, greatest(available, 0))
    end as reason
from decided
