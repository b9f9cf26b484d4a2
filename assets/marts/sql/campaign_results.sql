-- Each started campaign measured against its holdout: per arm, members and their purchases
-- and spend during the period (completed purchases, as of the run: a running campaign is
-- measured up to the as-of date), the uplift in spend per member (treatment minus holdout)
-- with a 95% confidence interval, the points issued against the budget, and what each unit
-- of incremental revenue cost in points' value.
-- The interval is Welch's (unequal variances) with the normal approximation:
-- uplift +/- 1.959964 x sqrt(s_t^2/n_t + s_h^2/n_h), s^2 the sample variance of spend per
-- member (members without a purchase count as 0); null when an arm has fewer than 2 members.
-- cost_per_incremental_revenue = points issued x point_value / (uplift x treated members):
-- null when the uplift is not positive (no incremental revenue to divide by) or the program
-- sets no point_value.
with

campaigns as (select * from loyalty.program_campaigns),
assignments as (select * from loyalty.campaign_assignments),
rewards as (select * from loyalty.campaign_rewards),
qualifying_events as (select * from loyalty.qualifying_events),
settings as (select * from loyalty.program_settings),

period_purchases as (
    select
        assignments.campaign,
        assignments.customer_id,
        count(*) as purchases,
        sum(qualifying_events.qualifying_spend) as spend
    from assignments
    join campaigns using (campaign)
    join qualifying_events
        on qualifying_events.customer_id = assignments.customer_id
        and qualifying_events.occurred_at >= cast(campaigns.starts_on as timestamp)
        and qualifying_events.occurred_at < cast(campaigns.ends_on as timestamp) + interval 1 day
    where qualifying_events.event_type = 'purchase' and qualifying_events.refunded_at is null
    group by all
),

per_member as (
    select
        assignments.campaign,
        assignments.arm,
        coalesce(period_purchases.purchases, 0) as purchases,
        cast(coalesce(period_purchases.spend, 0) as double) as spend
    from assignments
    left join period_purchases using (campaign, customer_id)
),

arms as (
    select
        campaign,
        count(*) filter (where arm = 'treatment') as n_t,
        count(*) filter (where arm = 'holdout') as n_h,
        avg(purchases) filter (where arm = 'treatment') as purchases_t,
        avg(purchases) filter (where arm = 'holdout') as purchases_h,
        avg(spend) filter (where arm = 'treatment') as spend_t,
        avg(spend) filter (where arm = 'holdout') as spend_h,
        var_samp(spend) filter (where arm = 'treatment') as var_t,
        var_samp(spend) filter (where arm = 'holdout') as var_h
    from per_member
    group by campaign
),

issued as (
    select campaign, sum(points) as points_issued
    from rewards
    group by campaign
),

measured as (
    select
        campaigns.campaign,
        campaigns.channel,
        campaigns.starts_on,
        campaigns.ends_on,
        least(campaigns.ends_on, getvariable('as_of')) as measured_through_on,
        coalesce(arms.n_t, 0) as treated_members,
        coalesce(arms.n_h, 0) as holdout_members,
        arms.purchases_t,
        arms.purchases_h,
        arms.spend_t,
        arms.spend_h,
        arms.spend_t - arms.spend_h as uplift,
        case when arms.n_t >= 2 and arms.n_h >= 2 then sqrt(arms.var_t / arms.n_t + arms.var_h / arms.n_h) end as uplift_se,
        coalesce(issued.points_issued, 0) as points_issued,
        campaigns.budget_points
    from campaigns
    left join arms using (campaign)
    left join issued using (campaign)
    -- A campaign starting after the run's date has nothing to measure yet.
    where campaigns.starts_on <= getvariable('as_of')
)

select
    measured.campaign,
    measured.channel,
    measured.starts_on,
    measured.ends_on,
    measured.measured_through_on,
    measured.ends_on <= getvariable('as_of') as is_finished,
    measured.treated_members,
    measured.holdout_members,
    round(measured.purchases_t, 4) as treated_purchases_per_member,
    round(measured.purchases_h, 4) as holdout_purchases_per_member,
    round(measured.spend_t, 2) as treated_spend_per_member,
    round(measured.spend_h, 2) as holdout_spend_per_member,
    round(measured.uplift, 2) as uplift_spend_per_member,
    round(measured.uplift - 1.959964 * measured.uplift_se, 2) as uplift_ci_low,
    round(measured.uplift + 1.959964 * measured.uplift_se, 2) as uplift_ci_high,
    cast(measured.points_issued as bigint) as points_issued,
    measured.budget_points,
    round(measured.points_issued / nullif(measured.budget_points, 0), 4) as budget_used_share,
    round(measured.points_issued * settings.point_value, 2) as points_issued_value,
    case when measured.uplift > 0
        then round(measured.points_issued * settings.point_value / (measured.uplift * measured.treated_members), 4)
    end as cost_per_incremental_revenue
from measured
cross join settings
order by measured.starts_on, measured.campaign
