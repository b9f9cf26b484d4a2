-- Macros shared by the models. Loaded on every warehouse connection.

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

create or replace temp macro are_two_people(
    first_a, canonical_a, last_a, birth_a, first_b, canonical_b, last_b, birth_b
) as birth_dates_conflict(birth_a, birth_b)
    or first_names_conflict(first_a, canonical_a, last_a, first_b, canonical_b, last_b);
