-- One row per app event. A redeem's amount is points, every other amount is money.
with

latest as (
    select * from latest_of('raw.app_events', ['event_id'])
),

events as (
    select
        'app' as source,
        event_id as source_event_id,
        user_id as source_record_id,
        type as event_type,
        'completed' as status,
        ts as occurred_at,
        case when type = 'redeem' then null else amount end as amount,
        case when type = 'redeem' then cast(amount as bigint) end as points,
        cast(null as date) as refunded_on,
        _delivered_on as delivered_on
    from latest
)

select * from events
