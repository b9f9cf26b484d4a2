-- The points ledger: one row per points movement, traceable to the event that caused it.
-- entry_id is derived from the rule and the source event, so reruns and re-deliveries
-- produce the same entries. Only events up to the as-of date count.
with

events as (select * from core.events),
earn_rates as (select * from loyalty.program_earn_rates),

purchases as (
    select *
    from events
    where is_completed_purchase
        and customer_id is not null
        and occurred_on <= getvariable('as_of')
),

earned as (
    select
        md5('earn|' || purchases.event_id) as entry_id,
        purchases.customer_id,
        'earn' as entry_type,
        cast(floor(purchases.amount * earn_rates.points_per_unit) as bigint) as points,
        purchases.occurred_at,
        purchases.channel as source,
        purchases.source_event_id,
        purchases.amount as qualifying_amount
    from purchases
    join earn_rates on earn_rates.channel = purchases.channel
)

select * from earned
order by customer_id, occurred_at, entry_id
