-- Every purchase, return, redemption, app engagement and call-center contact of every
-- channel, attributed to the customer whose record it came through. Anonymous store
-- sales keep a null customer. Events of a record erased at a person's request (their
-- orders, transactions and app events are kept for accounting) go to the pseudonymous id
-- privacy.erased_records gives them, which leads to no person.
with

source_records as (select * from identity.source_records),
erased_records as (select * from privacy.erased_records),
web_orders as (select * from staging.web_orders),
app_events as (select * from staging.app_events),
store_transactions as (select * from staging.store_transactions),
callcenter_contacts as (select * from staging.callcenter_contacts),

-- A contact is an event of its own record; goodwill points granted on the call ride on it.
contacts as (
    select
        source,
        source_record_id as source_event_id,
        source_record_id,
        'contact' as event_type,
        'completed' as status,
        registered_at as occurred_at,
        cast(null as decimal(18, 2)) as amount,
        goodwill_points as points,
        cast(null as date) as refunded_on
    from callcenter_contacts
),

events as (
    select * exclude (delivered_on) from web_orders
    union all by name select * exclude (delivered_on) from app_events
    union all by name select * exclude (delivered_on) from store_transactions
    union all by name select * from contacts
),

attributed as (
    select
        events.source || ':' || events.source_event_id as event_id,
        coalesce(source_records.customer_id, erased_records.erased_customer_id) as customer_id,
        events.source as channel,
        events.source_event_id,
        events.source_record_id,
        events.event_type,
        events.status,
        events.occurred_at,
        cast(events.occurred_at as date) as occurred_on,
        events.amount,
        events.points,
        -- A refund is known from the first delivery showing it; it never precedes the order.
        case when events.refunded_on is not null
            then greatest(cast(events.refunded_on as timestamp), events.occurred_at) end as refunded_at,
        events.event_type = 'purchase' and events.status = 'completed' as is_completed_purchase,
        -- A membership_fee (a web order buying a paid plan) is not a purchase: loyalty.memberships reads it.
        events.membership_plan
    from events
    left join source_records
        on source_records.source = events.source
        and source_records.source_record_id = events.source_record_id
    left join erased_records
        on erased_records.source = events.source
        and erased_records.source_record_id = events.source_record_id
)

select * from attributed
order by occurred_at, event_id
