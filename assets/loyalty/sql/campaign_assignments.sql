-- Every member of each started campaign's audience, and the arm they are in: treatment
-- (gets the reward and the campaign's export) or holdout (gets nothing; the comparison).
-- The audience is evaluated as of the campaign's start, on facts before it only, as a run
-- dated the day before the start would have seen them: who had enrolled, their lifecycle
-- stage (marts.segments' rules), the tier they held and their spend over the 12 months
-- before. It never reads the ledger or marts.segments: the campaign writes to the ledger,
-- and an audience chosen on behaviour during the campaign would bias its uplift.
-- The arm is a hash of campaign and customer_id, so it is the same on every run: the first
-- 13 hex digits of md5(campaign || '|' || customer_id) read as a number in [0, 1); below
-- holdout_share is holdout.
with

campaigns as (select * from loyalty.program_campaigns),
match_input as (select * from identity.match_input),
source_records as (select * from identity.source_records),
qualifying_events as (select * from loyalty.qualifying_events),
tier_history as (select * from loyalty.tier_history),
tiers as (select * from loyalty.program_tiers),
settings as (select * from loyalty.program_settings),

-- A campaign starting after the run's date has no audience yet.
started as (
    select
        campaigns.*,
        cast(campaigns.starts_on as timestamp) as starts_at,
        campaigns.starts_on - 1 as facts_through_on
    from campaigns
    where campaigns.starts_on <= getvariable('as_of')
),

-- A member enrolled at their first web, app or store registration (as for the enrolment bonus).
enrolled as (
    select source_records.customer_id, min(match_input.registered_at) as registered_at
    from match_input
    join source_records using (source, source_record_id)
    where match_input.source <> 'callcenter' and match_input.registered_at is not null
    group by source_records.customer_id
),

members as (
    select started.campaign, started.starts_at, started.facts_through_on, enrolled.customer_id
    from started
    join enrolled on enrolled.registered_at < started.starts_at
),

-- Purchases before the start that were not refunded before it (a later refund is not known then).
purchases_before as (
    select members.campaign, members.customer_id,
           min(qualifying_events.occurred_at)::date as first_purchase_on,
           max(qualifying_events.occurred_at)::date as last_purchase_on
    from members
    join qualifying_events
        on qualifying_events.customer_id = members.customer_id
        and qualifying_events.occurred_at < members.starts_at
        and coalesce(qualifying_events.refunded_at >= members.starts_at, true)
    where qualifying_events.event_type = 'purchase'
    group by all
),

-- Spend in the 12 months before the start: purchases less returns, as tiers count it.
spend_before as (
    select members.campaign, members.customer_id, sum(qualifying_events.qualifying_spend) as spend_12m
    from members
    join qualifying_events
        on qualifying_events.customer_id = members.customer_id
        and qualifying_events.occurred_at < members.starts_at
        and qualifying_events.occurred_at >= members.starts_at - interval 12 month
        and coalesce(qualifying_events.refunded_at >= members.starts_at, true)
    group by all
),

-- The tier held at the start: the latest tier change before it, else the first tier.
tier_at_start as (
    select members.campaign, members.customer_id, tier_history.tier
    from members
    asof join tier_history
        on tier_history.customer_id = members.customer_id
        and members.starts_at > tier_history.valid_from
),

facts as (
    select
        members.campaign,
        members.customer_id,
        -- marts.segments' lifecycle rules, as of the day before the start.
        case
            when purchases_before.last_purchase_on is null then 'prospect'
            when date_diff('day', purchases_before.first_purchase_on, members.facts_through_on) < settings.new_days then 'new'
            when date_diff('day', purchases_before.last_purchase_on, members.facts_through_on) < settings.active_days then 'active'
            when date_diff('day', purchases_before.last_purchase_on, members.facts_through_on) < settings.at_risk_days then 'at risk'
            when date_diff('day', purchases_before.last_purchase_on, members.facts_through_on) < settings.lapsed_days then 'lapsed'
            else 'churned'
        end as lifecycle_stage_at_start,
        coalesce(tier_at_start.tier, (select tier from tiers where tier_rank = 1)) as tier_at_start,
        cast(coalesce(spend_before.spend_12m, 0) as decimal(18, 2)) as spend_12m_before_start
    from members
    cross join settings
    left join purchases_before using (campaign, customer_id)
    left join spend_before using (campaign, customer_id)
    left join tier_at_start using (campaign, customer_id)
),

audience as (
    select facts.*
    from facts
    join campaigns using (campaign)
    where (campaigns.audience_lifecycle is null or list_contains(campaigns.audience_lifecycle, facts.lifecycle_stage_at_start))
        and (campaigns.audience_tiers is null or list_contains(campaigns.audience_tiers, facts.tier_at_start))
        and (campaigns.audience_min_spend_12m is null or facts.spend_12m_before_start >= campaigns.audience_min_spend_12m)
),

drawn as (
    select
        audience.*,
        ('0x' || substr(md5(audience.campaign || '|' || audience.customer_id), 1, 13))::bigint / 4503599627370496.0
            as assignment_draw  -- 16^13 = 2^52: exact in a double
    from audience
)

select
    drawn.campaign,
    drawn.customer_id,
    case when drawn.assignment_draw < campaigns.holdout_share then 'holdout' else 'treatment' end as arm,
    drawn.assignment_draw,
    drawn.lifecycle_stage_at_start,
    drawn.tier_at_start,
    drawn.spend_12m_before_start
from drawn
join campaigns using (campaign)
