-- Purchases and returns of every customer up to the as-of date, with their base points
-- and how long each counts towards tier qualification. Tiers, earning and balances all
-- read this one table, so a purchase's value and base points are worked out once.
with

events as (select * from core.events),
earn_rates as (select * from loyalty.program_earn_rates),
settings as (select * from loyalty.program_settings),

as_of as (
    -- The run sees everything that happened up to the end of its as-of day.
    select cast(getvariable('as_of') as timestamp) + interval 1 day as ends_at
),

purchases_and_returns as (
    select events.*
    from events, as_of
    where events.customer_id is not null
        and events.occurred_at < as_of.ends_at
        -- A cancelled order never earned; a refunded one earned until its refund.
        and (events.event_type = 'purchase' and events.status in ('completed', 'refunded')
             or events.event_type = 'return')
),

valued as (
    select
        purchases_and_returns.*,
        cast(floor(purchases_and_returns.amount * earn_rates.points_per_unit) as bigint) as points_at_base_rate,
        -- A refund after the as-of date is not known yet.
        case when purchases_and_returns.refunded_at < as_of.ends_at then purchases_and_returns.refunded_at end as known_refund_at
    from purchases_and_returns
    join earn_rates on earn_rates.channel = purchases_and_returns.channel
    cross join as_of
)

select
    valued.customer_id,
    valued.event_id,
    valued.channel,
    valued.source_event_id,
    valued.event_type,
    valued.occurred_at,
    valued.known_refund_at as refunded_at,
    -- A purchase counts until it leaves the window or is refunded; a return takes its
    -- value off for a window of its own.
    least(valued.occurred_at + to_months(settings.window_months), coalesce(valued.known_refund_at, 'infinity'::timestamp))
        as counts_until,
    case when valued.event_type = 'return' then -valued.amount else valued.amount end as qualifying_spend,
    case when valued.event_type = 'return' then -valued.points_at_base_rate else valued.points_at_base_rate end
        as base_points
from valued
cross join settings
