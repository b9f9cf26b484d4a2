-- The points ledger as of the run's date: every credit the rules gave, every debit as far
-- as the balance allowed it, and every expiry. Each entry is traceable to the event
-- (source, source_event_id) and rule that caused it; entry_id is derived from them, so
-- reruns and re-deliveries produce the same entries. A customer's entries add up to
-- their balance, and in time order (credits, then expiries, then debits within one
-- moment) the running balance never goes below zero.
-- A person erased at their request keeps their entries under a pseudonymous id
-- (privacy.erased_records); their balance is closed by one 'erasure' entry when the
-- erasure was applied, and their lots do not expire after it (nothing is left to expire).
with

movements as (select * from loyalty.point_movements),
debits as (select * from loyalty.debits),
lots as (select * from loyalty.lot_expiry),
erased_records as (select * from privacy.erased_records),

erased as (
    select erased_customer_id as customer_id, min(erased_at) as erased_at
    from erased_records
    group by erased_customer_id
),

as_of as (
    select cast(getvariable('as_of') as timestamp) + interval 1 day as ends_at
),

-- point_movements and lot_expiry key entries by md5 as a number (entry_key); the ledger
-- publishes the md5 text.
credits as (
    select printf('%032x', entry_key) as entry_id, customer_id, entry_type, rule, points, occurred_at, source, source_event_id, expires_at
    from movements
    where points > 0
),

applied_debits as (
    select entry_id, customer_id, entry_type, rule, -applied_points as points, occurred_at, source, source_event_id,
           cast(null as timestamp) as expires_at
    from debits
    where applied_points > 0
),

expiries as (
    select md5('expiry|' || printf('%032x', lots.entry_key)) as entry_id, lots.customer_id, 'expire' as entry_type, 'expiry' as rule,
           -lots.expired_points as points, lots.expires_at as occurred_at, lots.source, lots.source_event_id,
           cast(null as timestamp) as expires_at
    from lots
    cross join as_of
    left join erased using (customer_id)
    where lots.expired_points > 0 and lots.expires_at < as_of.ends_at
        and (erased.erased_at is null or lots.expires_at <= erased.erased_at)
),

-- Not materialized: the erasure closings below read only customer_id and points of it, so
-- the ledger's 5M rows are not copied once more, nor their entry_id worked out twice.
entries as not materialized (
    select * from credits
    union all select * from applied_debits
    union all select * from expiries
),

erasure_closings as (
    select md5('erasure|' || erased.customer_id) as entry_id, erased.customer_id, 'erasure' as entry_type,
           'erasure' as rule, cast(-sum(entries.points) as bigint) as points, erased.erased_at as occurred_at,
           cast(null as varchar) as source, cast(null as varchar) as source_event_id,
           cast(null as timestamp) as expires_at
    from entries
    join erased using (customer_id)
    group by erased.customer_id, erased.erased_at
    having sum(entries.points) <> 0
)

select * from entries
union all select * from erasure_closings
