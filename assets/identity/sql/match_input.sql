-- Every customer record of every source, in the shape the matching model compares:
-- identity.record_keys without the blocked identifier values (identity.blocked_identifiers).
-- A phone is flagged shared when two of its records are two people by the conflict guard's
-- rule: a household's phone joins different people, so the model gives agreeing on it less
-- weight. Mailboxes and addresses are not flagged (is_shared_email and is_shared_address are
-- false): flagging them too measured slightly worse on every profile (docs/identity.md,
-- "Known limits"), and the model's levels for them wait to be revisited.
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

-- The identifiers that can be flagged shared, one row per record and identifier: written
-- once here, paired on below and flagged by at the end.
identifiers as (
    select unique_id, 'phone' as kind, phone_e164 as value from keyed where phone_e164 is not null
),

-- Records carrying the same identifier, and whether two of them are two people by the
-- conflict guard's rule (macro are_two_people). Compared pairwise within an identifier up
-- to 50 records; an identifier carried by more is shared by definition.
carriers as (
    select
        identifiers.*,
        keyed.first_name_key,
        keyed.canonical_first_name,
        keyed.last_name_key,
        keyed.birth_on,
        count(*) over (partition by identifiers.kind, identifiers.value) as carried_by
    from identifiers
    join keyed using (unique_id)
),

shared_by_conflict as (
    select distinct a.kind, a.value
    from carriers a
    join carriers b
        on a.kind = b.kind and a.value = b.value and a.unique_id < b.unique_id
    where a.carried_by <= 50
        and are_two_people(a.first_name_key, a.canonical_first_name, a.last_name_key, a.birth_on,
                           b.first_name_key, b.canonical_first_name, b.last_name_key, b.birth_on)
),

shared as (
    select kind, value from shared_by_conflict
    union
    select distinct kind, value from carriers where carried_by > 50
),

-- Which kinds of a record's identifiers are shared; records with none are not here.
shared_kinds as (
    select
        identifiers.unique_id,
        bool_or(identifiers.kind = 'phone') as is_shared_phone
    from identifiers
    join shared using (kind, value)
    group by identifiers.unique_id
),

flagged as (
    select
        keyed.*,
        coalesce(shared_kinds.is_shared_phone, false) as is_shared_phone,
        false as is_shared_email,
        false as is_shared_address
    from keyed
    left join shared_kinds using (unique_id)
)

select * from flagged
order by unique_id
