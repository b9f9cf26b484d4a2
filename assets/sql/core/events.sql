-- Every purchase, return, redemption and app engagement of every channel, attributed to
-- the customer whose record it came through. Anonymous store sales keep a null customer.
with

source_records as (select * from identity.source_records),
web_orders as (select * from staging.web_orders),
app_events as (select * from staging.app_events),
store_transactions as (select * from staging.store_transactions),

events as (
    select * from web_orders
    union all by name select * from app_events
    union all by name select * from store_transactions
),

attributed as (
    select
        events.source || ':' || events.source_event_id as event_id,
        source_records.customer_id,
        events.source as channel,
        events.source_event_id,
        events.source_record_id,
        events.event_type,
        events.status,
        events.occurred_at,
        cast(events.occurred_at as date) as occurred_on,
        events.amount,
        events.points,
        events.event_type = 'purchase' and events.status = 'completed' as is_completed_purchase
    from events
    left join source_records
        on source_records.source = events.source
        and source_records.source_record_id = events.source_record_id
)

select * from attributed
order by occurred_at, event_id
