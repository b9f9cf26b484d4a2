-- One row per delivery: rows read, loaded, quarantined and suppressed (an erased person's), and for customer-record files
-- how many loaded rows carry each identifying field and how many of those are valid.
-- Rates are shares of the loaded rows (0-1); null where the file kind has no such field.
-- Phones are read as staging reads them: in the web account's country when it has one,
-- else in the run's phone region; phone_read_rate is the share of the phones given that
-- became a phone_e164 (valid or possible).
-- Standardizing a phone is a Python call (assets/staging/standardizers.py) and most of this
-- model's cost, so a raw row staging kept (the latest delivery of its key, as latest_of
-- picks it) takes the standardized values staging already holds for it, and only the
-- rows later deliveries replaced are standardized here. Both give the same values:
-- staging calls the same functions on the same text.
with

deliveries as (select * from raw.deliveries),
web_customers as (select * from raw.web_customers),
app_users as (select * from raw.app_users),
store_members as (select * from raw.store_members),
callcenter_contacts as (select * from raw.callcenter_contacts),
staged_records as (
    select source, source_record_id, source_file, delivered_on, email, phone_e164, is_phone_valid from staging.web_customers
    union all by name
    select source, source_record_id, source_file, delivered_on, email, phone_e164, is_phone_valid from staging.app_users
    union all by name
    select source, source_record_id, source_file, delivered_on, email, phone_e164, is_phone_valid from staging.store_members
    union all by name
    select source, source_record_id, source_file, delivered_on, email, phone_e164, is_phone_valid from staging.callcenter_contacts
),

identifying_fields as (
    select 'web' as source, account_id as source_record_id, _file, _delivered_on, _line,
        _delivery_id, true as has_email_field, email, phone, country, true as has_birth_field, birth_date as birth_on from web_customers
    union all
    select 'app', user_id, _file, _delivered_on, _line, _delivery_id, true, email, phone, null, true, birthday from app_users
    union all
    select 'store', card_number, _file, _delivered_on, _line, _delivery_id, false, null, phone, null, true, date_of_birth from store_members
    union all
    select 'callcenter', contact_id, _file, _delivered_on, _line, _delivery_id, true, email, phone, null, false, null from callcenter_contacts
),

latest_marked as (
    -- The row latest_of keeps for staging: the same order as the macro (assets/shared/macros.sql).
    select
        *,
        row_number() over (
            partition by source, source_record_id order by _delivered_on desc, _file desc, _line desc
        ) = 1 as is_latest
    from identifying_fields
),

staged_rows as (
    select
        latest_marked.*,
        staged_records.email is not null as is_email_valid,
        staged_records.phone_e164,
        staged_records.is_phone_valid
    from latest_marked
    join staged_records
        on staged_records.source = latest_marked.source
        and staged_records.source_record_id = latest_marked.source_record_id
        and staged_records.source_file = latest_marked._file
        and staged_records.delivered_on = latest_marked._delivered_on
    where latest_marked.is_latest
),

replaced_rows as (
    select
        latest_marked.*,
        standardize_email(email) is not null as is_email_valid,
        standardize_phone(phone, country) as phone_e164,
        is_valid_phone(phone, country) as is_phone_valid
    from latest_marked
    anti join staged_rows using (source, source_record_id, _file, _delivered_on, _line)
),

phones_read as (
    select * from staged_rows
    union all by name
    select * from replaced_rows
),

field_rates as (
    select
        _delivery_id as delivery_id,
        case when bool_or(has_email_field) then avg(case when email is not null then 1.0 else 0.0 end) end as email_present_rate,
        case when bool_or(has_email_field) then avg(case when is_email_valid then 1.0 else 0.0 end) end as email_valid_rate,
        avg(case when phone is not null then 1.0 else 0.0 end) as phone_present_rate,
        avg(case when is_phone_valid then 1.0 else 0.0 end) as phone_valid_rate,
        count(phone) as phones_present,
        count(phone_e164) as phones_read,
        count(*) filter (where is_phone_valid) as phones_valid,
        case when bool_or(has_birth_field) then avg(case when birth_on is not null then 1.0 else 0.0 end) end as birth_date_present_rate,
        case when bool_or(has_birth_field) then avg(case when plausible_birth_on(birth_on) is not null then 1.0 else 0.0 end) end as birth_date_valid_rate
    from phones_read
    group by all
),

summary as (
    select
        deliveries.source,
        deliveries.entity,
        deliveries.file,
        deliveries.delivered_on,
        deliveries.rows_read,
        deliveries.rows_loaded,
        deliveries.rows_quarantined,
        deliveries.rows_suppressed,
        round(deliveries.rows_quarantined / nullif(deliveries.rows_read, 0), 4) as quarantined_rate,
        round(field_rates.email_present_rate, 4) as email_present_rate,
        round(field_rates.email_valid_rate, 4) as email_valid_rate,
        round(field_rates.phone_present_rate, 4) as phone_present_rate,
        round(field_rates.phone_valid_rate, 4) as phone_valid_rate,
        field_rates.phones_present,
        field_rates.phones_read,
        field_rates.phones_valid,
        round(field_rates.phones_read / nullif(field_rates.phones_present, 0), 4) as phone_read_rate,
        round(field_rates.birth_date_present_rate, 4) as birth_date_present_rate,
        round(field_rates.birth_date_valid_rate, 4) as birth_date_valid_rate,
        deliveries.ingested_at
    from deliveries
    left join field_rates using (delivery_id)
)

select * from summary
order by delivered_on, file
