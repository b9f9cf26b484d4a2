-- One unified profile per customer, with where each value came from.
-- Survivorship rules (README, "The unified profile"):
--   names      the spelling most of the customer's records use; ties go to the freshest record
--   contacts   e-mail, phone and birth date: the freshest record's non-null value
--   address    street, city, postcode and country together, from the freshest record with one,
--              so a street is never paired with another record's postcode
--   consent    per channel, the latest statement (by the time it was stated)
-- customer_since is when the person joined: their first web account, app sign-up or store
-- card; a call-center contact is no joining, so it counts only for people known from calls
-- alone. (When the customer_id was assigned is identity.source_records.id_assigned_on.)
-- "Freshest" means delivered last; a tie on the delivery date goes to the source that
-- ranks higher in the contract's profile_priority (getvariable('source_priority')), then
-- to the later registration.
with

source_records as (select * from identity.source_records),
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
),

linked as (
    select
        source_records.customer_id,
        records.*,
        -- A larger number is fresher; every record of a customer gets a distinct one, so picks
        -- are deterministic. Numbered per customer (every pick below is within one customer):
        -- one sort per customer runs on every core, where one sort of all records did not.
        row_number() over (
            partition by source_records.customer_id
            order by
                records.delivered_on,
                list_position(getvariable('source_priority'), records.source) desc,
                records.registered_at nulls first,
                records.source,
                records.source_record_id
        ) as freshness
    from records
    join source_records using (source, source_record_id)
),

-- Each spelling with how many records use it and its freshest record's source and date.
first_name_spellings as (
    select
        customer_id, first_name, count(*) as records, max(freshness) as freshness,
        arg_max(source, freshness) as source, arg_max(delivered_on, freshness) as delivered_on
    from linked
    where first_name is not null
    group by all
),

-- The spelling most records use, ties to the freshest (freshness is distinct per record,
-- so per spelling too): the largest (records, freshness).
first_names as (
    select
        customer_id,
        arg_max({'value': first_name, 'source': source, 'updated_on': delivered_on}, (records, freshness)) as pick
    from first_name_spellings
    group by customer_id
),

last_name_spellings as (
    select
        customer_id, last_name, count(*) as records, max(freshness) as freshness,
        arg_max(source, freshness) as source, arg_max(delivered_on, freshness) as delivered_on
    from linked
    where last_name is not null
    group by all
),

last_names as (
    select
        customer_id,
        arg_max({'value': last_name, 'source': source, 'updated_on': delivered_on}, (records, freshness)) as pick
    from last_name_spellings
    group by customer_id
),

-- Every per-customer value in one pass over the records: the freshest contacts and
-- address, the latest consent per channel, and the record counts.
customer_values as (
    select
        customer_id,
        arg_max({'value': email, 'source': source, 'updated_on': delivered_on}, freshness)
            filter (where email is not null) as email,
        arg_max({'value': phone_e164, 'source': source, 'updated_on': delivered_on}, freshness)
            filter (where phone_e164 is not null) as phone,
        arg_max({'value': birth_on, 'source': source, 'updated_on': delivered_on}, freshness)
            filter (where birth_on is not null) as birth,
        arg_max({'street': street, 'city': city, 'postcode': postcode, 'country': country,
                 'source': source, 'updated_on': delivered_on}, freshness)
            filter (where street is not null or postcode is not null) as address,
        arg_max({'value': marketing_opt_in, 'source': source, 'stated_at': consent_stated_at}, (consent_stated_at, freshness))
            filter (where marketing_opt_in is not null and consent_stated_at is not null) as email_consent,
        arg_max({'value': push_opt_in, 'source': source, 'stated_at': consent_stated_at}, (consent_stated_at, freshness))
            filter (where push_opt_in is not null and consent_stated_at is not null) as push_consent,
        coalesce(
            min(cast(registered_at as date)) filter (where source <> 'callcenter'),
            min(cast(registered_at as date))
        ) as customer_since,
        min(registered_at) as first_registered_at,
        least(min(cast(registered_at as date)), min(delivered_on)) as first_seen_on,
        max(delivered_on) as last_seen_on,
        count(*) as records_total,
        count(*) filter (where source = 'web') as web_records,
        count(*) filter (where source = 'app') as app_records,
        count(*) filter (where source = 'store') as store_records,
        count(*) filter (where source = 'callcenter') as callcenter_records
    from linked
    group by customer_id
)

select
    customer_values.customer_id,
    first_names.pick.value as first_name,
    first_names.pick.source as first_name_source,
    first_names.pick.updated_on as first_name_updated_on,
    last_names.pick.value as last_name,
    last_names.pick.source as last_name_source,
    last_names.pick.updated_on as last_name_updated_on,
    customer_values.email.value as email,
    customer_values.email.source as email_source,
    customer_values.email.updated_on as email_updated_on,
    customer_values.phone.value as phone_e164,
    customer_values.phone.source as phone_source,
    customer_values.phone.updated_on as phone_updated_on,
    customer_values.birth.value as birth_on,
    customer_values.birth.source as birth_on_source,
    customer_values.birth.updated_on as birth_on_updated_on,
    customer_values.address.street as street,
    customer_values.address.city as city,
    customer_values.address.postcode as postcode,
    customer_values.address.country as country,
    customer_values.address.source as address_source,
    customer_values.address.updated_on as address_updated_on,
    coalesce(customer_values.email_consent.value, false) as has_email_consent,
    customer_values.email_consent.source as email_consent_source,
    customer_values.email_consent.stated_at as email_consent_stated_at,
    coalesce(customer_values.push_consent.value, false) as has_push_consent,
    customer_values.push_consent.source as push_consent_source,
    customer_values.push_consent.stated_at as push_consent_stated_at,
    customer_values.customer_since,
    customer_values.first_registered_at,
    customer_values.first_seen_on,
    customer_values.last_seen_on,
    customer_values.records_total,
    customer_values.web_records,
    customer_values.app_records,
    customer_values.store_records,
    customer_values.callcenter_records
from customer_values
left join first_names using (customer_id)
left join last_names using (customer_id)
order by customer_id
