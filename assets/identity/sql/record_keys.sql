-- Every customer record of every source with its matching keys, before merge protection.
-- Matching keys fold what does not tell people apart: case, accents, punctuation,
-- nicknames (Bob = Robert) and e-mail provider aliases (gmail dots and +tags).
with

web as (select * from staging.web_customers),
app as (select * from staging.app_users),
store as (select * from staging.store_members),
callcenter as (select * from staging.callcenter_contacts),

records as (
    select source, source_record_id, first_name, last_name, email, phone_e164, birth_on, street_key, postcode, registered_at from web
    union all
    select source, source_record_id, first_name, last_name, email, phone_e164, birth_on, street_key, postcode, registered_at from app
    union all
    select source, source_record_id, first_name, last_name, email, phone_e164, birth_on, street_key, postcode, registered_at from store
    union all
    select source, source_record_id, first_name, last_name, email, phone_e164, birth_on, street_key, postcode, registered_at from callcenter
),

keyed as (
    select
        source || ':' || source_record_id as unique_id,
        source,
        source_record_id,
        name_match_key(first_name) as first_name_key,
        canonical_first_name(first_name) as canonical_first_name,
        name_match_key(last_name) as last_name_key,
        -- The whole name, nickname folded: its frequency tells how rare the name is as a pair
        -- ("John Smith" is common even where John and Smith alone are not).
        canonical_first_name(first_name) || ' ' || name_match_key(last_name) as full_name_key,
        email_match_key(email) as email_key,
        phone_e164,
        birth_on,
        postcode,
        street_key,
        registered_at
    from records
)

select * from keyed
order by unique_id
