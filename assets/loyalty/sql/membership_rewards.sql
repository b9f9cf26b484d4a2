-- The paid benefit as ledger movements (rule 'membership'), in point_movements' columns:
-- a bonus on every purchase made inside a membership period (starts_at <= occurred_at < ends_at,
-- so a refunded membership covers purchases only before its refund), and its reversal when
-- the purchase is refunded, as the purchase's own bonuses are.
--   A plan with its own earn_multiplier m adds floor(base points x (m - 1)) on top of the
--   tier's bonus: the two stack.
--   A plan granting a tier lifts the purchase to that tier's multiplier when it is higher than
--   the one held: the bonus is floor(base x (granted - 1)) - floor(base x (held - 1)), so the
--   purchase earns exactly what the granted tier earns; nothing when the held tier is as high.
-- A purchase inside two periods (an early renewal, two plans) gets the larger bonus, once.
with

qualifying_events as (select * from loyalty.qualifying_events),
tier_history as (select * from loyalty.tier_history),
tiers as (select * from loyalty.program_tiers),
memberships as (select * from loyalty.memberships),
plans as (select * from loyalty.program_membership_plans),

-- Purchases inside a membership period, with the plan that covers them.
purchases_in_period as (
    select qualifying_events.*, memberships.order_id as membership_order_id, plans.is_tier_grant,
           plans.earn_multiplier as plan_multiplier
    from qualifying_events
    join memberships
        on memberships.customer_id = qualifying_events.customer_id
        and qualifying_events.occurred_at >= memberships.starts_at
        and qualifying_events.occurred_at < memberships.ends_at
    join plans using (plan)
    where qualifying_events.event_type = 'purchase'
),

-- The tier held just before the purchase, as point_movements prices the tier bonus; looked
-- up only for the purchases a membership covers, a small share of all of them.
covered as (
    select
        purchases_in_period.*,
        coalesce(tier_history.earn_multiplier, (select earn_multiplier from tiers where tier_rank = 1)) as held_multiplier
    from purchases_in_period
    asof left join tier_history
        on tier_history.customer_id = purchases_in_period.customer_id
        and purchases_in_period.occurred_at > tier_history.valid_from
),

bonuses as (
    select
        covered.*,
        case
            when covered.is_tier_grant
                then cast(floor(covered.base_points * (greatest(covered.plan_multiplier, covered.held_multiplier) - 1)) as bigint)
                    - cast(floor(covered.base_points * (covered.held_multiplier - 1)) as bigint)
            else cast(floor(covered.base_points * (covered.plan_multiplier - 1)) as bigint)
        end as bonus_points
    from covered
),

best as (
    select
        customer_id, event_id, channel, source_event_id, occurred_at, refunded_at,
        max(bonus_points) as points
    from bonuses
    group by all
)

select customer_id, 'bonus' as entry_type, 'membership' as rule, points, occurred_at,
       channel as source, source_event_id, event_id
from best
where points > 0
union all
-- event_id is unique per rule: the reversal's names the purchase and its refund.
select customer_id, 'reverse', 'membership', -points, refunded_at,
       channel, source_event_id, event_id || '|refund'
from best
where points > 0 and refunded_at is not null
