-- One row per store loyalty card: the latest delivery of each card_number, standardized.
-- The stores keep no e-mail and no consent.
with

latest as (
    select * from latest_of('raw.store_members', ['card_number'])
),

standardized as (
    select
        'store' as source,
        card_number as source_record_id,
        standardize_name(first_name) as first_name,
        standardize_name(last_name) as last_name,
        cast(null as varchar) as email,
        standardize_phone(phone) as phone_e164,
        is_valid_phone(phone) as is_phone_valid,
        phone is not null and standardize_phone(phone) is null as has_invalid_phone,
        plausible_birth_on(date_of_birth) as birth_on,
        date_of_birth is not null and plausible_birth_on(date_of_birth) is null as has_implausible_birth_date,
        cast(null as varchar) as street,
        cast(null as varchar) as street_key,
        cast(null as varchar) as city,
        standardize_postcode(postcode) as postcode,
        cast(null as varchar) as country,
        cast(enrolled_on as timestamp) as registered_at,
        cast(null as boolean) as marketing_opt_in,
        cast(null as boolean) as push_opt_in,
        cast(null as timestamp) as consent_stated_at,
        _delivered_on as delivered_on,
        _file as source_file
    from latest
)

select * from standardized
