-- Every points movement the program's rules ask for, before the balance rules: credits
-- (earn, bonus, adjust) and requested debits (reverse, redeem). loyalty.debits decides
-- how much of each debit the balance allows; loyalty.ledger is the result.
-- entry_key is derived from the rule and the source event, so reruns and re-deliveries
-- produce the same entries; nothing depends on which of a person's records an event
-- came through. It is md5(rule || '|' || event_id) read as one unsigned 128-bit number
-- (big-endian, so it sorts as the md5 text does): the ledger publishes the text,
-- printf('%032x', entry_key), while sorting and joining on the number is much cheaper.
-- Import CTEs read more than once are not materialized: a materialized copy of core.events
-- costs more than scanning it again, and hides its size from the join planner.
with

events as not materialized (select * from core.events),
customers as (select * from core.customers),
match_input as (select * from identity.match_input),
source_records as (select * from identity.source_records),
qualifying_events as not materialized (select * from loyalty.qualifying_events),
tier_history as (select * from loyalty.tier_history),
tiers as (select * from loyalty.program_tiers),
engagement as (select * from loyalty.program_engagement),
settings as (select * from loyalty.program_settings),
membership_rewards as (select * from loyalty.membership_rewards),
partner_earnings as (select * from loyalty.partner_earnings),
campaign_rewards as (select * from loyalty.campaign_rewards),
referral_rewards as (select * from loyalty.referral_rewards),

as_of as (
    select cast(getvariable('as_of') as timestamp) + interval 1 day as ends_at
),

-- Purchases earn at the tier held just before them (a purchase that lifts a customer to
-- a tier earns at the old one) and, in the birthday month, at the birthday multiplier.
purchases as (
    select
        qualifying_events.*,
        coalesce(tier_history.earn_multiplier, (select earn_multiplier from tiers where tier_rank = 1)) as tier_multiplier,
        coalesce(month(qualifying_events.occurred_at) = month(customers.birth_on), false) as is_birthday_month
    from qualifying_events
    -- A left join: an erased person's purchases earn under their pseudonymous id
    -- (privacy.erased_records), which has no row in core.customers (and no birthday).
    left join customers using (customer_id)
    asof left join tier_history
        on tier_history.customer_id = qualifying_events.customer_id
        and qualifying_events.occurred_at > tier_history.valid_from
    where qualifying_events.event_type = 'purchase'
),

purchase_points as (
    select
        purchases.*,
        cast(floor(purchases.base_points * (purchases.tier_multiplier - 1)) as bigint) as tier_bonus_points,
        case when purchases.is_birthday_month
            then cast(floor(purchases.base_points * (settings.birthday_multiplier - 1)) as bigint) else 0
        end as birthday_bonus_points
    from purchases, settings
),

earned as (
    select customer_id, 'earn' as entry_type, 'purchase' as rule, base_points as points, occurred_at,
           channel as source, source_event_id, event_id
    from purchase_points
    union all
    select customer_id, 'bonus', 'tier_multiplier', tier_bonus_points, occurred_at, channel, source_event_id, event_id
    from purchase_points
    union all
    select customer_id, 'bonus', 'birthday', birthday_bonus_points, occurred_at, channel, source_event_id, event_id
    from purchase_points
),

-- A refund takes back everything the order earned, bonuses included.
refunds as (
    select customer_id, 'reverse' as entry_type, 'refund' as rule,
           -(base_points + tier_bonus_points + birthday_bonus_points) as points,
           refunded_at as occurred_at, channel as source, source_event_id, event_id
    from purchase_points
    where refunded_at is not null
),

-- A store return takes back the base points of its amount, but never more than the
-- customer earned in store up to then. returned_through is that capped running total:
-- asked_through + min(0, min over returns j so far of (store_earned_j - asked_through_j)).
store_earned as (
    select customer_id, occurred_at,
           sum(sum(base_points + tier_bonus_points + birthday_bonus_points)) over (
               partition by customer_id order by occurred_at rows unbounded preceding
           ) as earned_through
    from purchase_points
    where channel = 'store'
    group by customer_id, occurred_at
),

store_returns as (
    select
        qualifying_events.customer_id, qualifying_events.event_id, qualifying_events.channel,
        qualifying_events.source_event_id, qualifying_events.occurred_at,
        -qualifying_events.base_points as asked,
        coalesce(store_earned.earned_through, 0) as earned_through
    from qualifying_events
    asof left join store_earned
        on store_earned.customer_id = qualifying_events.customer_id
        and qualifying_events.occurred_at >= store_earned.occurred_at
    where qualifying_events.event_type = 'return'
),

returns_asked as (
    select *, sum(asked) over (
        partition by customer_id order by occurred_at, event_id rows unbounded preceding
    ) as asked_through
    from store_returns
),

returns_running as (
    select *,
           asked_through + least(0, min(earned_through - asked_through) over (
               partition by customer_id order by occurred_at, event_id rows unbounded preceding
           )) as returned_through
    from returns_asked
),

returns as (
    select customer_id, 'reverse' as entry_type, 'return' as rule,
           -(returned_through
             - coalesce(lag(returned_through) over (partition by customer_id order by occurred_at, event_id), 0)) as points,
           occurred_at, channel as source, source_event_id, event_id
    from returns_running
),

-- The enrolment bonus is per person: once, at the earliest web, app or store registration.
enrolments as (
    select
        source_records.customer_id,
        arg_min(match_input.unique_id, (match_input.registered_at, match_input.unique_id)) as first_record,
        min(match_input.registered_at) as registered_at
    from match_input
    join source_records using (source, source_record_id)
    where match_input.source <> 'callcenter' and match_input.registered_at is not null
    group by source_records.customer_id
),

enrolment_bonus as (
    select enrolments.customer_id, 'bonus' as entry_type, 'enrolment' as rule, settings.enrolment_points as points,
           enrolments.registered_at as occurred_at, split_part(enrolments.first_record, ':', 1) as source,
           split_part(enrolments.first_record, ':', 2) as source_event_id, enrolments.first_record as event_id
    from enrolments, settings, as_of
    where enrolments.registered_at < as_of.ends_at
),

-- App engagement earns per event, capped per customer per day (earliest events first).
engagement_events as (
    select events.*, engagement.points as points_per_event
    from events
    join engagement using (event_type)
    cross join as_of
    where events.channel = 'app' and events.customer_id is not null and events.occurred_at < as_of.ends_at
),

engagement_running as (
    select *, sum(points_per_event) over (
        partition by customer_id, occurred_on order by occurred_at, event_id rows unbounded preceding
    ) as earned_today
    from engagement_events
),

engagement_bonus as (
    select customer_id, 'bonus' as entry_type, 'engagement' as rule,
           least(points_per_event, greatest(0, settings.engagement_daily_cap - (earned_today - points_per_event))) as points,
           occurred_at, channel as source, source_event_id, event_id
    from engagement_running, settings
),

goodwill as (
    select events.customer_id, 'adjust' as entry_type, 'goodwill' as rule, events.points,
           events.occurred_at, events.channel as source, events.source_event_id, events.event_id
    from events, as_of
    where events.event_type = 'contact' and events.points > 0 and events.customer_id is not null
        and events.occurred_at < as_of.ends_at
),

redemptions as (
    select events.customer_id, 'redeem' as entry_type, 'redemption' as rule, -events.points as points,
           events.occurred_at, events.channel as source, events.source_event_id, events.event_id
    from events, as_of
    where events.event_type = 'redeem' and events.points > 0 and events.customer_id is not null
        and events.occurred_at < as_of.ends_at
),

movements as (
    select * from earned
    union all select * from refunds
    union all select * from returns
    union all select * from enrolment_bonus
    union all select * from engagement_bonus
    union all select * from goodwill
    union all select * from redemptions
    union all select * from membership_rewards
    union all select * from partner_earnings
    union all select customer_id, entry_type, rule, points, occurred_at, source, source_event_id, event_id
        from campaign_rewards
    union all select * from referral_rewards
),

-- entry_key once per movement: it names the entry and breaks ties in the order lots are spent.
identified as (
    select ('0x' || md5(movements.rule || '|' || movements.event_id))::uhugeint as entry_key, movements.*
    from movements
    where movements.points <> 0
)

select
    identified.entry_key,
    identified.customer_id,
    identified.entry_type,
    identified.rule,
    cast(identified.points as bigint) as points,
    identified.occurred_at,
    identified.source,
    identified.source_event_id,
    case when identified.points > 0 then identified.occurred_at + to_months(settings.expiry_months) end as expires_at,
    -- The customer's credits up to and including this one, in the order lots are spent.
    case when identified.points > 0 then cast(sum(identified.points) filter (where identified.points > 0) over (
        partition by identified.customer_id order by identified.occurred_at, identified.entry_key
        rows unbounded preceding
    ) as bigint) end as credited_through
from identified, settings
