-- Every consent statement the sources ever delivered: one row per customer record, channel
-- and delivery. Channels, as the contract states them (schemas/sources):
--   email  web accounts' marketing_opt_in (consent to e-mail marketing)
--   push   app users' push_opt_in (consent to push messages)
-- The stores and the call center state no consent.
-- Read from the raw tables, which keep every delivery of every key, not from staging, which
-- keeps only the latest: the history across deliveries is the point of this table.
-- The sources send no time with a statement, so it was stated at its delivery, as staging
-- says (consent_stated_at). A record delivered twice on one date (two files) states once,
-- from the row staging's latest_of would pick (the later file, then the later line). A blank
-- opt-in states nothing and is left out.
-- is_in_effect marks the one statement per customer and channel that core.customers
-- (has_email_consent, email_consent_stated_at, ...) and so the exports' consent_stated_at
-- rely on: only a record's current row (the one staging keeps) can be in effect, and of
-- those the latest stated, ties broken exactly as core.customers breaks them (the source's
-- profile_priority, then the later registration, then source and record id).
with

source_records as (select * from identity.source_records),
web_customers as (select * from raw.web_customers),
app_users as (select * from raw.app_users),

delivered_rows as (
    -- Every delivered row of a consent-stating record, blank opt-ins included for now: a
    -- blank in a record's latest delivery means no statement is in effect for it.
    select
        'web' as source,
        account_id as source_record_id,
        'email' as channel,
        marketing_opt_in as is_consented,
        created_at as registered_at,
        _delivered_on as delivered_on,
        _file as source_file,
        _line as line
    from web_customers
    union all
    select
        'app' as source,
        user_id as source_record_id,
        'push' as channel,
        push_opt_in as is_consented,
        signup_ts as registered_at,
        _delivered_on as delivered_on,
        _file as source_file,
        _line as line
    from app_users
),

one_row_per_delivery as (
    select
        *,
        -- The record's latest delivery is the row staging keeps (latest_of's order).
        row_number() over (
            partition by source, source_record_id, channel
            order by delivered_on desc, source_file desc, line desc
        ) = 1 as is_current_row
    from delivered_rows
    qualify row_number() over (
        partition by source, source_record_id, channel, delivered_on
        order by source_file desc, line desc
    ) = 1
),

statements as (
    select
        source_records.customer_id,
        one_row_per_delivery.*,
        cast(one_row_per_delivery.delivered_on as timestamp) as stated_at
    from one_row_per_delivery
    join source_records using (source, source_record_id)
    where one_row_per_delivery.is_consented is not null
),

changes_marked as (
    select
        *,
        -- A record's first statement is a change too: it is when consent was first given or refused.
        is_consented is distinct from lag(is_consented) over (
            partition by source, source_record_id, channel order by delivered_on
        ) as is_change
    from statements
),

in_effect_marked as (
    select
        *,
        is_current_row and row_number() over (
            partition by customer_id, channel, is_current_row
            order by
                stated_at desc,
                delivered_on desc,
                list_position(getvariable('source_priority'), source),
                registered_at desc nulls last,
                source desc,
                source_record_id desc
        ) = 1 as is_in_effect
    from changes_marked
)

select
    customer_id,
    channel,
    is_consented,
    source,
    source_record_id,
    stated_at,
    delivered_on,
    source_file,
    is_change,
    is_in_effect
from in_effect_marked
order by customer_id, channel, stated_at, source, source_record_id
