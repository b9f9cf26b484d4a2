-- One row per app event. A redeem's amount is points, every other amount is money.
with

app_events as (
    select * from raw.app_events
),

latest as (
    select *
    from app_events
    qualify row_number() over (
        partition by event_id order by _delivered_on desc, _file desc, _line desc
    ) = 1
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
