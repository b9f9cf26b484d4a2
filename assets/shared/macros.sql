-- Macros shared by the models. Loaded on every warehouse connection.

-- The latest delivery of each key of a raw table: a later delivery of a key updates it
-- (schemas/sources/: "a later delivery of an account_id updates it"). Within one delivery
-- date the later file, then the later line, wins. `key_columns` is the contract's `key`
-- of the file kind, e.g. latest_of('raw.web_customers', ['account_id']);
-- tests/test_staging_models.py checks every staging model passes the contract's key.
create or replace temp macro latest_of(raw_table, key_columns) as table
with
delivered as (
    -- The key as one value (columns() cannot stand in a window's partition by).
    select *, struct_pack(*columns(key_columns)) as _latest_of_key from query_table(raw_table)
),
latest as (
    select * exclude (_latest_of_key)
    from delivered
    qualify row_number() over (
        partition by _latest_of_key order by _delivered_on desc, _file desc, _line desc
    ) = 1
)
select * from latest;

-- A birth date in the future or more than 120 years before the as-of date is a typo or a
-- placeholder (01/01/1900), not a fact: it becomes null and the record is flagged.
create or replace temp macro plausible_birth_on(d) as
    case
        when d > getvariable('as_of') then null
        when d < getvariable('as_of') - interval 120 year then null
        else d
    end;

-- Two customer records that are two people, whatever else they share (assets/conflict_guard.py):
-- their birth dates conflict or their first names do (the two parts below).
-- Birth dates conflict when both are known and differ by more than one typo (one changed or
-- two swapped digits, or day and month swapped).
create or replace temp macro birth_dates_conflict(birth_a, birth_b) as coalesce(
    birth_a is not null and birth_b is not null
        and damerau_levenshtein(strftime(birth_a, '%Y%m%d'), strftime(birth_b, '%Y%m%d')) > 1
        and not (year(birth_a) = year(birth_b)
                 and month(birth_a) = day(birth_b) and day(birth_a) = month(birth_b)),
    false);

-- First names conflict when both are known and are neither the same given name nor a typo
-- apart ('pte' is Peter, 'sarh' and 'Sally' are Sarah, 'Emma' and 'Sophie' are two), unless
-- first and last name are swapped between the records.
create or replace temp macro first_names_conflict(first_a, canonical_a, last_a, first_b, canonical_b, last_b) as coalesce(
    canonical_a is not null and canonical_b is not null
        and canonical_a <> canonical_b
        and levenshtein(first_a, first_b) > 2
        and levenshtein(canonical_a, canonical_b) > 2
        and jaro_winkler_similarity(first_a, first_b) < 0.8
        and not coalesce(jaro_winkler_similarity(first_a, last_b) >= 0.9
                         and jaro_winkler_similarity(last_a, first_b) >= 0.9, false),
    false);

-- The parts in force are those the data backs (variables guard_birth_dates and
-- guard_first_names, set from guard_evidence below by assets/conflict_guard.py; unset: both).
create or replace temp macro are_two_people(
    first_a, canonical_a, last_a, birth_a, first_b, canonical_b, last_b, birth_b
) as (coalesce(getvariable('guard_birth_dates'), true) and birth_dates_conflict(birth_a, birth_b))
    or (coalesce(getvariable('guard_first_names'), true)
        and first_names_conflict(first_a, canonical_a, last_a, first_b, canonical_b, last_b));

-- How often each part of the rule would split records that are evidently one person: pairs
-- sharing a phone or mailbox (carried by at most 50 records) that agree exactly on everything
-- else the part does not look at (the birth-date part: first name and surname; the first-name
-- part: birth date and surname). Where a part splits many of them, the data's own duplicates
-- carry that kind of difference (FEBRL replaces first names and rewrites birth dates) and the
-- part would cut true matches; where it splits almost none, what it splits is twins. Counted
-- by shared identifier too: one twin pair on a household phone is several record pairs but
-- one phone, and the shares are judged on identifiers (assets/identity/conflict_guard.py).
create or replace temp macro guard_evidence(records_table) as table
with
contacts as (
    select 'phone' as kind, phone_e164 as value, unique_id, first_name_key, canonical_first_name, last_name_key, birth_on
    from query_table(records_table) where phone_e164 is not null
    union all
    select 'email', email_key, unique_id, first_name_key, canonical_first_name, last_name_key, birth_on
    from query_table(records_table) where email_key is not null
),
sized as (select *, count(*) over (partition by kind, value) as carried_by from contacts),
same_contact as (
    select
        a.kind || ':' || a.value as identifier,
        a.unique_id as id_a, a.first_name_key as first_a, a.canonical_first_name as canonical_a,
        a.last_name_key as last_a, a.birth_on as birth_a,
        b.unique_id as id_b, b.first_name_key as first_b, b.canonical_first_name as canonical_b,
        b.last_name_key as last_b, b.birth_on as birth_b
    from sized a
    join sized b on a.kind = b.kind and a.value = b.value and a.unique_id < b.unique_id
    where a.carried_by <= 50
),
birth_date_evidence as (
    select identifier, id_a, id_b, birth_dates_conflict(birth_a, birth_b) as is_contradicted
    from same_contact
    where canonical_a = canonical_b and last_a = last_b and birth_a is not null and birth_b is not null
),
first_name_evidence as (
    select identifier, id_a, id_b,
           first_names_conflict(first_a, canonical_a, last_a, first_b, canonical_b, last_b) as is_contradicted
    from same_contact
    where birth_a = birth_b and last_a = last_b and canonical_a is not null and canonical_b is not null
),
evidence as (
    select 'birth_dates' as part, * from birth_date_evidence
    union all
    select 'first_names', * from first_name_evidence
)
select
    part,
    count(distinct (id_a, id_b)) as evident_pairs,
    count(distinct (id_a, id_b)) filter (where is_contradicted) as contradicted_pairs,
    count(distinct identifier) as evident_identifiers,
    count(distinct identifier) filter (where is_contradicted) as contradicted_identifiers
from evidence
group by part;
