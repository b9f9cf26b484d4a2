-- Every partner sale up to the run's as-of date, matched to a customer or not, and what it
-- earns. A sale names its member by e-mail or phone only; it is matched through identity's
-- records (their e-mail as identity compares it, and their E.164 phone), never made a
-- customer of its own. The sale is matched when every record its e-mail or phone reaches
-- belongs to ONE customer; several customers (a family's mailbox or phone, or the e-mail
-- naming one person and the phone another) leave it unmatched as 'ambiguous'. Blocked
-- identifiers (identity.blocked_identifiers) are null in identity.match_input, so they match
-- nobody. The first reason that applies is the one given:
--   unknown_partner  the partner is not in the program file's `partners`
--   no_contact       neither a usable e-mail nor a readable phone
--   no_match         no customer record carries the e-mail or the phone
--   ambiguous        the e-mail and phone reach more than one customer
-- A matched sale of a known partner earns floor(amount x the partner's rate).
with

partner_sales as (select * from staging.partner_earnings),
match_input as (select * from identity.match_input),
source_records as (select * from identity.source_records),
partners as (select * from loyalty.program_partners),

as_of as (
    select cast(getvariable('as_of') as timestamp) + interval 1 day as ends_at
),

sales as (
    select partner_sales.*
    from partner_sales, as_of
    where partner_sales.occurred_at < as_of.ends_at
),

-- Each customer's e-mails and phones, as identity compares them.
customer_contacts as (
    select distinct 'email' as kind, match_input.email_key as value, source_records.customer_id
    from match_input join source_records using (source, source_record_id)
    where match_input.email_key is not null
    union all
    select distinct 'phone', match_input.phone_e164, source_records.customer_id
    from match_input join source_records using (source, source_record_id)
    where match_input.phone_e164 is not null
),

sale_contacts as (
    select partner_txn_id, 'email' as kind, email_key as value from sales where email_key is not null
    union all
    select partner_txn_id, 'phone', phone_e164 from sales where phone_e164 is not null
),

candidates as (
    select
        sale_contacts.partner_txn_id,
        count(distinct customer_contacts.customer_id) as customers,
        min(customer_contacts.customer_id) as customer_id,
        string_agg(distinct sale_contacts.kind, ' and ' order by sale_contacts.kind) as matched_by
    from sale_contacts
    join customer_contacts using (kind, value)
    group by sale_contacts.partner_txn_id
),

decided as (
    select
        sales.partner_txn_id,
        sales.partner,
        sales.occurred_at,
        sales.amount,
        case
            when partners.partner is null then 'unknown_partner'
            when sales.email_key is null and sales.phone_e164 is null then 'no_contact'
            when candidates.customers is null then 'no_match'
            when candidates.customers > 1 then 'ambiguous'
        end as reason,
        candidates.customer_id,
        candidates.matched_by,
        partners.points_per_unit
    from sales
    left join partners using (partner)
    left join candidates using (partner_txn_id)
)

select
    partner_txn_id,
    partner,
    occurred_at,
    amount,
    reason is null as is_matched,
    case when reason is null then customer_id end as customer_id,
    case when reason is null then matched_by end as matched_by,
    reason,
    case when reason is null then cast(floor(amount * points_per_unit) as bigint) else 0 end as points
from decided
order by partner_txn_id
