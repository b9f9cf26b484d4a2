-- Every customer record of every source, in the shape the matching model compares.
-- Matching keys fold what does not tell people apart: case, accents, punctuation,
-- nicknames (Bob = Robert) and e-mail provider aliases (gmail dots and +tags).
-- An identifier (phone, mailbox, address) is flagged shared when its records disagree on
-- the first initial or the birth date: a household's phone or a family's mailbox joins
-- different people, so the model gives agreeing on it less weight.
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
),

people_behind_phone as (
    select
        phone_e164,
        count(distinct left(canonical_first_name, 1)) > 1 or count(distinct birth_on) > 1 as is_shared_phone
    from keyed
    where phone_e164 is not null
    group by all
),

people_behind_email as (
    select
        email_key,
        count(distinct left(canonical_first_name, 1)) > 1 or count(distinct birth_on) > 1 as is_shared_email
    from keyed
    where email_key is not null
    group by all
),

people_behind_address as (
    select
        postcode,
        street_key,
        count(distinct left(canonical_first_name, 1)) > 1 or count(distinct birth_on) > 1 as is_shared_address
    from keyed
    where postcode is not null and street_key is not null
    group by all
),

flagged as (
    select
        keyed.*,
        coalesce(people_behind_phone.is_shared_phone, false) as is_shared_phone,
        coalesce(people_behind_email.is_shared_email, false) as is_shared_email,
        coalesce(people_behind_address.is_shared_address, false) as is_shared_address
    from keyed
    left join people_behind_phone using (phone_e164)
    left join people_behind_email using (email_key)
    left join people_behind_address using (postcode, street_key)
)

select * from flagged
order by unique_id
