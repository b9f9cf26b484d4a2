-- One row per till transaction. Anonymous sales (no card) stay: they count for revenue,
-- not for any customer. A sale is a purchase; a redeem's amount is points.
with

transactions as (
    select * from raw.store_transactions
),

latest as (
    select *
    from transactions
    qualify row_number() over (
        partition by txn_id order by _delivered_on desc, _file desc, _line desc
    ) = 1
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
