-- One unified profile per customer. Survivorship: each field takes the most recently
-- delivered non-null value among the customer's records; consent takes the latest
-- statement per channel. Counts of records per source show where a customer is known.
with

source_records as (select * from identity.source_records),
web as (select * from staging.web_customers),
app as (select * from staging.app_users),
store as (select * from staging.store_members),
callcenter as (select * from staging.callcenter_contacts),

records as (
    select * exclude (contact_reason, csat, goodwill_points) from callcenter
    union all by name select * from web
    union all by name select * from app
    union all by name select * from store
),

linked as (
    select
        source_records.customer_id,
        records.*,
        -- Later deliveries are fresher; within one delivery the later registration wins.
        row_number() over (
            order by records.delivered_on, records.registered_at nulls first, records.source, records.source_record_id
        ) as freshness
    from records
    join source_records using (source, source_record_id)
),

profiles as (
    select
        customer_id,
        arg_max(first_name, freshness) filter (where first_name is not null) as first_name,
        arg_max(last_name, freshness) filter (where last_name is not null) as last_name,
        arg_max(email, freshness) filter (where email is not null) as email,
        arg_max(phone_e164, freshness) filter (where phone_e164 is not null) as phone_e164,
        arg_max(birth_on, freshness) filter (where birth_on is not null) as birth_on,
        arg_max(street, freshness) filter (where street is not null) as street,
        arg_max(city, freshness) filter (where city is not null) as city,
        arg_max(postcode, freshness) filter (where postcode is not null) as postcode,
        arg_max(country, freshness) filter (where country is not null) as country,
        coalesce(arg_max(marketing_opt_in, consent_stated_at) filter (where marketing_opt_in is not null), false) as has_email_consent,
        coalesce(arg_max(push_opt_in, consent_stated_at) filter (where push_opt_in is not null), false) as has_push_consent,
        min(registered_at) as first_registered_at,
        count(*) as records_total,
        count(*) filter (where source = 'web') as web_records,
        count(*) filter (where source = 'app') as app_records,
        count(*) filter (where source = 'store') as store_records,
        count(*) filter (where source = 'callcenter') as callcenter_records
    from linked
    group by customer_id
)

select * from profiles
order by customer_id
