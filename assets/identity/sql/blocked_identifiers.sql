-- Identifier values that never count as evidence that two records are one person:
-- values listed in the blocked-identifiers file (placeholders such as test@test.com, a
-- shop's own phone), and values carried by the records of more different people than
-- the limit allows (max_people_per_identifier; people counted as distinct full names).
-- identity/match_input.sql drops these values before matching.
with

record_keys as (select * from identity.record_keys),

listed as (
    select kind, pattern, reason
    from read_csv(getvariable('blocked_identifiers_file'), header = true, all_varchar = true)
),

identifiers as (
    select 'email' as kind, email_key as value, unique_id, full_name_key from record_keys where email_key is not null
    union all
    select 'phone', phone_e164, unique_id, full_name_key from record_keys where phone_e164 is not null
),

carriers as (
    select kind, value, count(*) as records, count(distinct full_name_key) as people
    from identifiers
    group by all
),

matched_listed as (
    select carriers.kind, carriers.value, carriers.records, carriers.people,
           'listed: ' || any_value(listed.reason) as reason
    from carriers
    join listed on listed.kind = carriers.kind and carriers.value like listed.pattern
    group by all
),

over_limit as (
    select kind, value, records, people,
           'carried by ' || people || ' people, more than ' || getvariable('max_people_per_identifier') as reason
    from carriers
    where people > getvariable('max_people_per_identifier')
),

blocked as (
    select * from matched_listed
    union all
    select * from over_limit anti join matched_listed using (kind, value)
)

select kind, value, reason, records, people
from blocked
order by kind, value
