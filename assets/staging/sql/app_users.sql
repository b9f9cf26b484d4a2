-- One row per app user: the latest delivery of each user_id, standardized.
-- The app keeps the full name in one field; it is split into first and last name.
with

latest as (
    select * from latest_of('raw.app_users', ['user_id'])
),

standardized as (
    select
        'app' as source,
        user_id as source_record_id,
        full_name_first(name) as first_name,
        full_name_last(name) as last_name,
        standardize_email(email) as email,
        standardize_phone(phone) as phone_e164,
        is_valid_phone(phone) as is_phone_valid,
        phone is not null and standardize_phone(phone) is null as has_invalid_phone,
        plausible_birth_on(birthday) as birth_on,
        birthday is not null and plausible_birth_on(birthday) is null as has_implausible_birth_date,
        cast(null as varchar) as street,
        cast(null as varchar) as street_key,
        cast(null as varchar) as city,
        cast(null as varchar) as postcode,
        cast(null as varchar) as country,
        signup_ts as registered_at,
        cast(null as boolean) as marketing_opt_in,
        push_opt_in,
        cast(_delivered_on as timestamp) as consent_stated_at,
        _delivered_on as delivered_on,
        _file as source_file,
        -- Referral codes (web and app only): trimmed and upper-cased, so ' ab12 ' is AB12.
        nullif(upper(trim(referral_code)), '') as referral_code,
        nullif(upper(trim(referred_by)), '') as referred_by
    from latest
)

select * from standardized
