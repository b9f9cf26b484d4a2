-- One row per customer record of every source: the record's own standardized values next
-- to the values the unified profile (core.customers) chose, so that
--     select * from core.customer_records where customer_id = 'C...'
-- shows a person's profile and every record behind it, with its source. Why the records
-- are one person (the links and their weights) is `omniloyal identity explain`.
with

source_records as (select * from identity.source_records),
customers as (select * from core.customers),
web as (select * from staging.web_customers),
app as (select * from staging.app_users),
store as (select * from staging.store_members),
callcenter as (select * from staging.callcenter_contacts),

records as (
    -- The staging customer-record tables share their column names (schemas/warehouse/staging.yaml).
    select * from web
    union all by name select * from app
    union all by name select * from store
    union all by name select * from callcenter
)

select
    source_records.customer_id,
    records.source,
    records.source_record_id,
    source_records.records_in_customer,
    customers.customer_since,
    source_records.id_assigned_on,
    records.registered_at,
    records.delivered_on,
    records.source_file,
    records.first_name,
    customers.first_name as profile_first_name,
    records.last_name,
    customers.last_name as profile_last_name,
    records.email,
    customers.email as profile_email,
    records.phone_e164,
    customers.phone_e164 as profile_phone_e164,
    records.birth_on,
    customers.birth_on as profile_birth_on,
    records.street,
    customers.street as profile_street,
    records.city,
    customers.city as profile_city,
    records.postcode,
    customers.postcode as profile_postcode,
    records.country,
    customers.country as profile_country,
    records.marketing_opt_in,
    customers.has_email_consent,
    records.push_opt_in,
    customers.has_push_consent,
    records.consent_stated_at
from records
join source_records using (source, source_record_id)
join customers on customers.customer_id = source_records.customer_id
order by source_records.customer_id, records.registered_at, records.source, records.source_record_id
