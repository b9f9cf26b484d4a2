-- Macros shared by the models. Loaded on every warehouse connection.

-- A birth date in the future or more than 120 years before the as-of date is a typo or a
-- placeholder (01/01/1900), not a fact: it becomes null and the record is flagged.
create or replace temp macro plausible_birth_on(d) as
    case
        when d > getvariable('as_of') then null
        when d < getvariable('as_of') - interval 120 year then null
        else d
    end;
