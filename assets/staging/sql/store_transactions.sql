-- One row per till transaction. Anonymous sales (no card) stay: they count for revenue,
-- not for any customer. A sale is a purchase; a redeem's amount is points.
with

latest as (
    select * from latest_of('raw.store_transactions', ['txn_id'])
),

events as (
    select
        'store' as source,
        txn_id as source_event_id,
        card_number as source_record_id,
        case kind when 'sale' then 'purchase' else kind end as event_type,
        'completed' as status,
        txn_ts as occurred_at,
        case when kind = 'redeem' then null else amount end as amount,
        case when kind = 'redeem' then cast(amount as bigint) end as points,
        cast(null as date) as refunded_on,
        _delivered_on as delivered_on
    from latest
)

select * from events
