-- Every customer record of every source, in the shape the matching model compares:
-- identity.record_keys without the blocked identifier values (identity.blocked_identifiers).
-- An identifier (phone, mailbox, address) is flagged shared when two of its records are
-- two people by the conflict guard's rule: a household's phone or a family's mailbox joins
-- different people, so the model gives agreeing on it less weight.
with

record_keys as (select * from identity.record_keys),
blocked_identifiers as (select * from identity.blocked_identifiers),

keyed as (
    select
        record_keys.* replace (
            case when blocked_email.value is null then record_keys.email_key end as email_key,
            case when blocked_phone.value is null then record_keys.phone_e164 end as phone_e164
        )
    from record_keys
    left join blocked_identifiers as blocked_email
        on blocked_email.kind = 'email' and blocked_email.value = record_keys.email_key
    left join blocked_identifiers as blocked_phone
        on blocked_phone.kind = 'phone' and blocked_phone.value = record_keys.phone_e164
),

-- Records carrying the same identifier, and whether two of them are two people by the
-- conflict guard's rule (macro are_two_people). Compared pairwise within an identifier up
-- to 50 records; an identifier carried by more is shared by definition.
carriers as (
    select 'phone' as kind, phone_e164 as value, * exclude (phone_e164) from keyed where phone_e164 is not null
    union all by name
    select 'email', email_key, * exclude (email_key) from keyed where email_key is not null
    union all by name
    select 'address', postcode || '|' || street_key, * from keyed where postcode is not null and street_key is not null
),

carriers_sized as (
    select *, count(*) over (partition by kind, value) as carried_by from carriers
),

shared_by_conflict as (
    select distinct a.kind, a.value
    from carriers_sized a
    join carriers_sized b
        on a.kind = b.kind and a.value = b.value and a.unique_id < b.unique_id
    where a.carried_by <= 50
        and are_two_people(a.first_name_key, a.canonical_first_name, a.last_name_key, a.birth_on,
                           b.first_name_key, b.canonical_first_name, b.last_name_key, b.birth_on)
),

shared as (
    select kind, value from shared_by_conflict
    union
    select distinct kind, value from carriers_sized where carried_by > 50
),

people_behind_phone as (
    select value as phone_e164, true as is_shared_phone from shared where kind = 'phone'
),

people_behind_email as (
    select value as email_key, true as is_shared_email from shared where kind = 'email'
),

people_behind_address as (
    select value as address_value, true as is_shared_address from shared where kind = 'address'
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
    left join people_behind_address on people_behind_address.address_value = keyed.postcode || '|' || keyed.street_key
)

select * from flagged
order by unique_id
