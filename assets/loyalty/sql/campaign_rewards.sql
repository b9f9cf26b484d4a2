-- The points each campaign gives its treated members (rule `campaign`, a bonus entry of
-- loyalty.point_movements): on every purchase inside the campaign's period that is completed
-- as of the run (a refunded one earns no campaign points), a multiplier gives
-- floor(base points x (multiplier - 1)) and bonus_points a fixed bonus. What a member gets
-- stops at cap_per_member, and what the campaign gives stops at budget_points, both in the
-- order purchases happened (occurred_at, then event_id): a purchase may get part of its
-- reward, and the ones after nothing (kept here with points 0 and the reason).
-- The holdout never appears here. The first eight columns are point_movements' own.
with

campaigns as (select * from loyalty.program_campaigns),
assignments as (select * from loyalty.campaign_assignments),
qualifying_events as (select * from loyalty.qualifying_events),

treated_purchases as (
    select
        campaigns.campaign,
        qualifying_events.*,
        case
            when campaigns.reward_multiplier is not null
                then cast(floor(qualifying_events.base_points * (campaigns.reward_multiplier - 1)) as bigint)
            else campaigns.reward_bonus_points
        end as reward_points,
        campaigns.cap_per_member,
        campaigns.budget_points
    from assignments
    join campaigns using (campaign)
    join qualifying_events
        on qualifying_events.customer_id = assignments.customer_id
        and qualifying_events.occurred_at >= cast(campaigns.starts_on as timestamp)
        and qualifying_events.occurred_at < cast(campaigns.ends_on as timestamp) + interval 1 day
    where assignments.arm = 'treatment'
        and qualifying_events.event_type = 'purchase'
        and qualifying_events.refunded_at is null
),

member_running as (
    select *, sum(reward_points) over (
        partition by campaign, customer_id order by occurred_at, event_id rows unbounded preceding
    ) as member_asked_through
    from treated_purchases
),

within_cap as (
    select *,
           least(reward_points, greatest(0, cap_per_member - (member_asked_through - reward_points))) as capped_points
    from member_running
),

campaign_running as (
    select *, sum(capped_points) over (
        partition by campaign order by occurred_at, event_id rows unbounded preceding
    ) as campaign_given_through
    from within_cap
),

within_budget as (
    select *,
           least(capped_points, greatest(0, budget_points - (campaign_given_through - capped_points))) as points
    from campaign_running
)

select
    customer_id,
    'bonus' as entry_type,
    'campaign' as rule,
    cast(points as bigint) as points,
    occurred_at,
    channel as source,
    source_event_id,
    -- Unique per campaign and purchase: one purchase may be in two campaigns.
    campaign || '|' || event_id as event_id,
    campaign,
    event_id as purchase_event_id,
    reward_points,
    case
        when points = reward_points then null
        when capped_points < reward_points and points = capped_points then 'cap_per_member'
        else 'budget'
    end as limited_by
from within_budget
