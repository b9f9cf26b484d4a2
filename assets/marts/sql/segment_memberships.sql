-- Every segment every customer is in, one row each: marts.segments unpivoted, with the
-- occasions as segments of their own and marketing's custom segments added.
with

segments as (select * from marts.segments),
custom as (select * from marts.custom_segment_members),

memberships as (
    select customer_id, 'rfm' as segmentation, rfm_segment as segment from segments
    union all
    select customer_id, 'lifecycle', lifecycle_stage from segments
    union all
    select customer_id, 'value', value_band from segments where value_band is not null
    union all
    select customer_id, 'channel_mix', channel_mix from segments
    union all
    select customer_id, 'engagement', engagement_level from segments
    union all
    select customer_id, 'occasion', 'birthday this month' from segments where is_birthday_this_month
    union all
    select customer_id, 'occasion', 'points expiring in 30 days' from segments where has_points_expiring_30d
    union all
    select customer_id, 'occasion', 'close to the next tier' from segments where is_close_to_next_tier
    union all
    select customer_id, 'occasion', 'recent call-center contact' from segments where has_recent_callcenter_contact
    union all
    select customer_id, 'custom', segment from custom
)

select * from memberships
order by customer_id, segmentation, segment
