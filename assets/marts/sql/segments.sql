-- One row per customer with every segmentation as of the run's date: RFM, lifecycle,
-- value, channel mix, engagement and occasions. marts.segment_memberships has the same
-- as one row per customer and segment, with marketing's own segments added.
-- RFM scores are quintiles by percent rank over customers who bought (ties share a
-- score): 5 is the most recent / most frequent / highest spending fifth. The named
-- segment is the first rule of loyalty.program_rfm_segments whose recency and
-- frequency-monetary ranges hold the customer; customers without a purchase are 'Prospect'.
-- The monetary value scored is historical_value (spend on completed purchases), one column.
with

customers as (select customer_id, birth_on from core.customers),
events as (select * from core.events),
balances as (select * from loyalty.balances),
tiers as (select * from loyalty.program_tiers),
purchase_summary as (select * from marts.purchase_summary),
customer_value as (select * from marts.customer_value),
rules as (select * from loyalty.program_rfm_segments),
settings as (select * from loyalty.program_settings),
value_bands as (select * from loyalty.program_value_bands),
engagement_levels as (select * from loyalty.program_engagement_levels),

purchases as (
    select customer_id, channel, occurred_at, occurred_on, amount
    from events
    where is_completed_purchase
        and customer_id is not null
        and occurred_on <= getvariable('as_of')
),

rfm_values as (
    select
        customer_id,
        date_diff('day', max(occurred_on), getvariable('as_of')) as recency_days,
        count(*) as frequency,
        cast(sum(amount) as decimal(18, 2)) as monetary,
        count(distinct channel) as purchase_channels,
        any_value(channel) as only_channel
    from purchases
    group by customer_id
),

rfm_scores as (
    select
        *,
        least(5, 1 + floor(5 * percent_rank() over (order by recency_days desc)))::integer as r_score,
        least(5, 1 + floor(5 * percent_rank() over (order by frequency)))::integer as f_score,
        least(5, 1 + floor(5 * percent_rank() over (order by monetary)))::integer as m_score
    from rfm_values
),

fm_scores as (
    select *, cast(round((f_score + m_score) / 2, 0) as integer) as fm_score
    from rfm_scores
),

rfm_named as (
    select
        fm_scores.customer_id,
        arg_min(rules.segment, rules.priority) as rfm_segment
    from fm_scores
    join rules
        on fm_scores.r_score between rules.r_min and rules.r_max
        and fm_scores.fm_score between rules.fm_min and rules.fm_max
    group by fm_scores.customer_id
),

-- Value bands: buyers ranked by predicted 12-month value, highest first; each band takes
-- customers up to its cumulative share.
value_ranked as (
    select
        customer_id,
        predicted_value_12m,
        row_number() over (order by predicted_value_12m desc, customer_id) / count(*) over () as value_share
    from customer_value
    where predicted_value_12m is not null
),

value_banded as (
    select value_ranked.customer_id, arg_min(value_bands.value_band, value_bands.band_rank) as value_band
    from value_ranked
    join value_bands on value_ranked.value_share <= value_bands.up_to_share
    group by value_ranked.customer_id
),

recent_activity as (
    select
        customer_id,
        count(*) filter (where event_type in ('share', 'review', 'check_in')) as app_engagements_90d,
        count(*) filter (where event_type = 'contact') > 0 as has_recent_callcenter_contact
    from events
    where customer_id is not null
        and occurred_on > getvariable('as_of') - interval 90 day
        and occurred_on <= getvariable('as_of')
    group by customer_id
),

joined as (
    select
        customers.customer_id,
        customers.birth_on,
        fm_scores.recency_days,
        coalesce(fm_scores.frequency, 0) as frequency,
        fm_scores.r_score,
        fm_scores.f_score,
        fm_scores.m_score,
        fm_scores.fm_score,
        coalesce(rfm_named.rfm_segment, 'Prospect') as rfm_segment,
        fm_scores.purchase_channels,
        fm_scores.only_channel,
        purchase_summary.first_purchase_on,
        purchase_summary.last_purchase_on,
        coalesce(purchase_summary.historical_value, 0) as historical_value,
        customer_value.predicted_value_12m,
        customer_value.probability_alive,
        value_banded.value_band,
        coalesce(recent_activity.app_engagements_90d, 0) as app_engagements_90d,
        coalesce(recent_activity.has_recent_callcenter_contact, false) as has_recent_callcenter_contact,
        balances.points_expiring_next_30_days,
        balances.next_tier,
        coalesce(balances.spend_to_next_tier, balances.points_to_next_tier) as still_needed_for_next_tier
    from customers
    left join fm_scores using (customer_id)
    left join rfm_named using (customer_id)
    left join purchase_summary using (customer_id)
    left join customer_value using (customer_id)
    left join value_banded using (customer_id)
    left join recent_activity using (customer_id)
    left join balances using (customer_id)
),

engaged as (
    select joined.customer_id, arg_max(engagement_levels.engagement_level, engagement_levels.min_events_90d) as engagement_level
    from joined
    join engagement_levels on joined.app_engagements_90d >= engagement_levels.min_events_90d
    group by joined.customer_id
)

select
    joined.customer_id,
    getvariable('as_of') as as_of_on,
    joined.recency_days,
    joined.frequency,
    joined.r_score,
    joined.f_score,
    joined.m_score,
    joined.fm_score,
    joined.r_score::varchar || joined.f_score::varchar || joined.m_score::varchar as rfm_cell,
    joined.rfm_segment,
    joined.first_purchase_on,
    joined.last_purchase_on,
    case
        when joined.last_purchase_on is null then 'prospect'
        when date_diff('day', joined.first_purchase_on, getvariable('as_of')) < settings.new_days then 'new'
        when joined.recency_days < settings.active_days then 'active'
        when joined.recency_days < settings.at_risk_days then 'at risk'
        when joined.recency_days < settings.lapsed_days then 'lapsed'
        else 'churned'
    end as lifecycle_stage,
    joined.historical_value,
    joined.predicted_value_12m,
    joined.probability_alive,
    joined.value_band,
    coalesce(joined.purchase_channels, 0) as purchase_channels,
    case
        when joined.purchase_channels is null then 'no purchase'
        when joined.purchase_channels = 1 then joined.only_channel || '-only'
        else 'omnichannel'
    end as channel_mix,
    joined.has_recent_callcenter_contact,
    joined.app_engagements_90d,
    engaged.engagement_level,
    coalesce(month(joined.birth_on) = month(getvariable('as_of')), false) as is_birthday_this_month,
    coalesce(joined.points_expiring_next_30_days, 0) > 0 as has_points_expiring_30d,
    coalesce(joined.still_needed_for_next_tier <= settings.close_to_next_tier_share * next_tiers.threshold, false)
        as is_close_to_next_tier
from joined
cross join settings
join engaged using (customer_id)
left join tiers as next_tiers on next_tiers.tier = joined.next_tier
order by joined.customer_id
