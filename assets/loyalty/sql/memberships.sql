-- Paid memberships: one row per membership fee (a web order with a membership_plan), the
-- period it bought and its status as of the run. A fee is not a purchase (core.events gives it
-- event_type 'membership_fee'), so it earns no points and counts in no spend; what it buys is
-- the benefit loyalty.membership_rewards gives to the purchases inside its period.
-- A period runs from the moment the fee was paid for the plan's months; a refund ends it then.
-- A fee for the same plan paid while the previous period runs, or at most the plan's
-- renewal_grace_days after it ended, is a renewal (only for plans that renew).
with

events as (select * from core.events),
plans as (select * from loyalty.program_membership_plans),

as_of as (
    select cast(getvariable('as_of') as timestamp) + interval 1 day as ends_at
),

-- A cancelled fee order was never paid: it buys nothing. A refund after the as-of date is not
-- known yet.
fees as (
    select
        events.customer_id,
        events.source_event_id as order_id,
        events.membership_plan as plan,
        events.amount as fee,
        events.occurred_at as paid_at,
        case when events.refunded_at < as_of.ends_at then events.refunded_at end as refunded_at
    from events, as_of
    where events.event_type = 'membership_fee'
        and events.customer_id is not null
        and events.status in ('completed', 'refunded')
        and events.occurred_at < as_of.ends_at
),

periods as (
    select
        fees.*,
        plans.plan is not null as is_known_plan,
        coalesce(plans.renews, false) as renews,
        plans.renewal_grace_days,
        fees.paid_at + to_months(plans.months) as runs_until
    from fees
    left join plans using (plan)
),

-- The previous and next fee of the same customer and plan; refunded fees and unknown plans
-- neither renew nor are renewed, so they are chained apart (is_chained false).
chained as (
    select
        periods.*,
        periods.is_known_plan and periods.refunded_at is null as is_chained,
        lag(runs_until) over chain as previous_runs_until,
        lead(paid_at) over chain as next_paid_at
    from periods
    window chain as (
        partition by customer_id, plan, (periods.is_known_plan and periods.refunded_at is null)
        order by paid_at, order_id
    )
),

classified as (
    select
        chained.*,
        chained.is_chained and chained.renews
            and chained.previous_runs_until is not null
            and chained.paid_at <= chained.previous_runs_until + to_days(chained.renewal_grace_days)
            as is_renewal,
        chained.is_chained and chained.renews
            and chained.next_paid_at is not null
            and chained.next_paid_at <= chained.runs_until + to_days(chained.renewal_grace_days)
            as is_renewed,
        case when chained.is_known_plan then least(chained.runs_until, coalesce(chained.refunded_at, 'infinity'::timestamp)) end
            as ends_at
    from chained
)

select
    classified.order_id,
    classified.customer_id,
    classified.plan,
    classified.fee,
    classified.paid_at,
    case when classified.is_known_plan then classified.paid_at end as starts_at,
    classified.ends_at,
    case when classified.is_known_plan then cast(classified.paid_at as date) end as starts_on,
    cast(classified.ends_at as date) as ends_on,
    classified.refunded_at,
    classified.is_renewal,
    classified.is_renewed,
    case
        when not classified.is_known_plan then 'unknown_plan'
        when classified.refunded_at is not null then 'refunded'
        when classified.ends_at >= as_of.ends_at then 'active'
        when classified.is_renewed then 'renewed'
        else 'ended'
    end as status
from classified, as_of
order by classified.customer_id, classified.paid_at, classified.order_id
