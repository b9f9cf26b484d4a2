-- One row per referral seen: a web account or app user that signed up with a referral code
-- (its referred_by), with the customers identity resolved on both sides and what came of it.
-- Identity keeps it honest: a code used by another account of the same person, or by someone
-- who was a customer already, earns nothing. The rules (loyalty.program_referrals) are one
-- row, or none when the program has no referrals, and then this table is empty.
-- Codes never leave staging: the referral is named by the referred record (source:key).
with

web as (select * from staging.web_customers),
app as (select * from staging.app_users),
source_records as (select * from identity.source_records),
match_input as (select * from identity.match_input),
qualifying_events as (select * from loyalty.qualifying_events),
rules as (select * from loyalty.program_referrals),

as_of as (
    select cast(getvariable('as_of') as timestamp) + interval 1 day as ends_at
),

-- The records that hold a code of their own and may sign up with another's.
coded_records as (
    select source, source_record_id, registered_at, referral_code, referred_by from web
    union all
    select source, source_record_id, registered_at, referral_code, referred_by from app
),

-- Whose each code is. A code carried by records of two customers names nobody for sure.
code_owners as (
    select
        coded_records.referral_code,
        case when count(distinct source_records.customer_id) = 1 then min(source_records.customer_id) end
            as referrer_customer_id,
        count(distinct source_records.customer_id) as owners
    from coded_records
    join source_records using (source, source_record_id)
    where coded_records.referral_code is not null
    group by coded_records.referral_code
),

-- A household, where the program counts one as the same person: customers whose records
-- share a street address (street and postcode) or a phone number. Only the customers on
-- either side of a referral are looked at.
referral_parties as (
    select referrer_customer_id as customer_id from code_owners where owners = 1
    union
    select source_records.customer_id
    from coded_records
    join source_records using (source, source_record_id)
    where coded_records.referred_by is not null
),

party_contacts as (
    select distinct
        source_records.customer_id,
        unnest([
            case when match_input.street_key is not null and match_input.postcode is not null
                then 'address|' || match_input.street_key || '|' || match_input.postcode end,
            case when match_input.phone_e164 is not null then 'phone|' || match_input.phone_e164 end
        ]) as contact
    from match_input
    join source_records using (source, source_record_id)
    semi join referral_parties on referral_parties.customer_id = source_records.customer_id
    where (select household_counts_as_self from rules)
),

referred as (
    select
        coded_records.source || ':' || coded_records.source_record_id as referral_id,
        coded_records.source,
        coded_records.source_record_id,
        coded_records.referred_by,
        coded_records.registered_at,
        source_records.customer_id as referred_customer_id
    from coded_records
    join source_records using (source, source_record_id)
    cross join as_of
    where coded_records.referred_by is not null
        and coalesce(coded_records.registered_at < as_of.ends_at, true)
),

-- Each customer's first registration (web, app or store: a call-center contact is no
-- joining, as for the enrolment bonus); ties on the moment go to the lower record key.
-- A referral is only news when it comes through this first record.
first_records as (
    select
        source_records.customer_id,
        arg_min(match_input.unique_id, (match_input.registered_at, match_input.unique_id)) as first_record_id
    from match_input
    join source_records using (source, source_record_id)
    where match_input.source <> 'callcenter' and match_input.registered_at is not null
    group by source_records.customer_id
),

purchases as (
    select customer_id, event_id, occurred_at, refunded_at
    from qualifying_events
    where event_type = 'purchase'
),

first_purchases as (
    select customer_id, min(occurred_at) as first_purchase_at
    from purchases
    group by customer_id
),

same_household as (
    select distinct referred.referral_id
    from referred
    join code_owners on code_owners.referral_code = referred.referred_by and code_owners.owners = 1
    join party_contacts as referrer_contacts on referrer_contacts.customer_id = code_owners.referrer_customer_id
    join party_contacts as referred_contacts
        on referred_contacts.customer_id = referred.referred_customer_id
        and referred_contacts.contact = referrer_contacts.contact
    where referrer_contacts.contact is not null
),

-- The qualifying purchase: the first one inside the window that is not refunded (as known
-- at the run), so a refunded order never pays a referral.
qualifying as (
    select
        referred.referral_id,
        arg_min(purchases.event_id, (purchases.occurred_at, purchases.event_id)) as qualifying_event_id,
        min(purchases.occurred_at) as qualified_at
    from referred
    cross join rules
    join purchases
        on purchases.customer_id = referred.referred_customer_id
        and purchases.occurred_at >= referred.registered_at
        and purchases.occurred_at < referred.registered_at + to_days(rules.qualify_within_days)
        and purchases.refunded_at is null
    group by referred.referral_id
),

checked as (
    select
        referred.*,
        code_owners.referrer_customer_id,
        referred.registered_at + to_days(rules.qualify_within_days) as window_ends_at,
        qualifying.qualifying_event_id,
        qualifying.qualified_at,
        -- First reason that applies, in this order.
        case
            when code_owners.owners is null then 'unknown_code'
            when code_owners.owners > 1 then 'ambiguous_code'
            when code_owners.referrer_customer_id = referred.referred_customer_id then 'same_customer'
            when same_household.referral_id is not null then 'same_household'
            when referred.registered_at is null then 'no_registration_date'
            when first_records.first_record_id <> referred.referral_id
                or first_purchases.first_purchase_at < referred.registered_at then 'already_customer'
        end as rejection
    from referred
    cross join rules
    left join code_owners on code_owners.referral_code = referred.referred_by
    left join first_records on first_records.customer_id = referred.referred_customer_id
    left join first_purchases on first_purchases.customer_id = referred.referred_customer_id
    left join qualifying using (referral_id)
    left join same_household using (referral_id)
),

-- The yearly cap counts qualified referrals per referrer and calendar year of the
-- qualifying purchase, earliest first.
rank_in_year as (
    select
        referral_id,
        row_number() over (
            partition by referrer_customer_id, year(qualified_at) order by qualified_at, referral_id
        ) as rank_in_year
    from checked
    where rejection is null and qualified_at is not null
),

decided as (
    select
        checked.*,
        case
            when checked.rejection is not null then 'rejected'
            when checked.qualified_at is null and checked.window_ends_at > as_of.ends_at then 'pending'
            when checked.qualified_at is null then 'rejected'
            when rank_in_year.rank_in_year > rules.yearly_cap_per_referrer then 'capped'
            else 'rewarded'
        end as status,
        case
            when checked.rejection is not null then checked.rejection
            when checked.qualified_at is null and checked.window_ends_at > as_of.ends_at then 'no_purchase_yet'
            when checked.qualified_at is null then 'not_qualified_in_time'
            when rank_in_year.rank_in_year > rules.yearly_cap_per_referrer then 'yearly_cap'
        end as reason
    from checked
    cross join rules
    cross join as_of
    left join rank_in_year using (referral_id)
)

select
    decided.referral_id,
    decided.referrer_customer_id,
    decided.referred_customer_id,
    decided.source,
    decided.source_record_id,
    decided.registered_at,
    decided.window_ends_at,
    -- Only a qualifying purchase that counted: null for rejected referrals.
    case when decided.status in ('rewarded', 'capped') then decided.qualified_at end as qualified_at,
    case when decided.status in ('rewarded', 'capped') then decided.qualifying_event_id end as qualifying_event_id,
    decided.status,
    decided.reason,
    case when decided.status = 'rewarded' then rules.referrer_points else 0 end as referrer_points,
    case when decided.status = 'rewarded' then rules.referred_points else 0 end as referred_points
from decided
cross join rules
order by decided.referral_id
