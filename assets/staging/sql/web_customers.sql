-- One row per web account: the latest delivery of each account_id, standardized.
-- Column names are shared by every staging customer-record table.
with

latest as (
    select * from latest_of('raw.web_customers', ['account_id'])
),

standardized as (
    select
        'web' as source,
        account_id as source_record_id,
        standardize_name(first_name) as first_name,
        standardize_name(last_name) as last_name,
        standardize_email(email) as email,
        -- A phone without a country code is read in the account's own country when it has
        -- one, else in the run's phone region (getvariable('phone_region')).
        standardize_phone(phone, country) as phone_e164,
        is_valid_phone(phone, country) as is_phone_valid,
        phone is not null and standardize_phone(phone, country) is null as has_invalid_phone,
        plausible_birth_on(birth_date) as birth_on,
        birth_date is not null and plausible_birth_on(birth_date) is null as has_implausible_birth_date,
        street,
        standardize_street(street) as street_key,
        standardize_name(city) as city,
        standardize_postcode(postcode) as postcode,
        upper(country) as country,
        created_at as registered_at,
        marketing_opt_in,
        cast(null as boolean) as push_opt_in,
        -- The delivery is the statement's date when the file carries none of its own.
        cast(_delivered_on as timestamp) as consent_stated_at,
        _delivered_on as delivered_on,
        _file as source_file,
        -- Referral codes (web and app only): trimmed and upper-cased, so ' ab12 ' is AB12.
        nullif(upper(trim(referral_code)), '') as referral_code,
        nullif(upper(trim(referred_by)), '') as referred_by
    from latest
)

select * from standardized
