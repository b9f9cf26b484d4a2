-- One row per web order, latest status. Column names are shared by every staging event table,
-- plus membership_plan: an order that buys a paid membership plan is a 'membership_fee', not a
-- 'purchase', so nothing that reads purchases (points, tiers, RFM, CLV, revenue) counts it.
with

orders as (
    select * from raw.web_orders
),

latest as (
    select * from latest_of('raw.web_orders', ['order_id'])
),

-- The export has no refund time: the first delivery that shows an order refunded
-- is when the refund became known, and a run as of an earlier date must not see it.
refunds as (
    select order_id, min(_delivered_on) as refunded_on
    from orders
    where status = 'refunded'
    group by order_id
),

events as (
    select
        'web' as source,
        order_id as source_event_id,
        account_id as source_record_id,
        case when nullif(trim(membership_plan), '') is null then 'purchase' else 'membership_fee' end as event_type,
        coalesce(status, 'completed') as status,
        ordered_at as occurred_at,
        total_amount as amount,
        cast(null as bigint) as points,
        case when status = 'refunded' then refunds.refunded_on end as refunded_on,
        _delivered_on as delivered_on,
        nullif(trim(membership_plan), '') as membership_plan
    from latest
    left join refunds using (order_id)
)

select * from events
