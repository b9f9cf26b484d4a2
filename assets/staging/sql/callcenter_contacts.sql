-- One row per call-center contact: the latest delivery of each contact_id, standardized.
-- caller_name comes as "First Last" or "Last, First"; both are split the same way.
with

latest as (
    select * from latest_of('raw.callcenter_contacts', ['contact_id'])
),

standardized as (
    select
        'callcenter' as source,
        contact_id as source_record_id,
        full_name_first(caller_name) as first_name,
        full_name_last(caller_name) as last_name,
        standardize_email(email) as email,
        standardize_phone(phone) as phone_e164,
        is_valid_phone(phone) as is_phone_valid,
        phone is not null and standardize_phone(phone) is null as has_invalid_phone,
        cast(null as date) as birth_on,
        false as has_implausible_birth_date,
        cast(null as varchar) as street,
        cast(null as varchar) as street_key,
        cast(null as varchar) as city,
        cast(null as varchar) as postcode,
        cast(null as varchar) as country,
        contacted_at as registered_at,
        cast(null as boolean) as marketing_opt_in,
        cast(null as boolean) as push_opt_in,
        cast(null as timestamp) as consent_stated_at,
        _delivered_on as delivered_on,
        _file as source_file,
        reason as contact_reason,
        csat,
        goodwill_points
    from latest
)

select * from standardized
