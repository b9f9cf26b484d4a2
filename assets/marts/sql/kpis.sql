-- Programme KPIs as a long table: one row per kpi, period and dimension.
-- period is 'as_of' for a snapshot at the run's date (windows end on it), or a month
-- 'YYYY-MM' up to the as-of date. dimension is a breakdown (channel, source, tier,
-- segment, entry type) or 'all'. unit says what value measures (units below); README
-- ("KPIs") defines each measure.
with

customers as (select * from core.customers),
events as (select * from core.events),
balances as (select * from loyalty.balances),
ledger as (select * from loyalty.ledger),
tier_history as (select * from loyalty.tier_history),
segments as (select * from marts.segments),
source_records as (select * from identity.source_records),
match_input as (select * from identity.match_input),
settings as (select * from loyalty.program_settings),
memberships as (select * from loyalty.memberships),
membership_plans as (select * from loyalty.program_membership_plans),
partner_transactions as (select * from loyalty.partner_transactions),

-- What each KPI's value measures, for readers such as the report: 'rate' is a share
-- between 0 and 1 (shown as a percentage), 'count' a number of customers, records, orders
-- or movements, 'currency' money, 'points' loyalty points, 'number' another quantity (an
-- average per customer or buyer). A KPI missing here fails the model.
units (kpi, unit) as (
    values
        ('members', 'count'),
        ('customer_records', 'count'),
        ('records_per_customer', 'number'),
        ('identity_match_rate', 'rate'),
        ('active_members_30d', 'count'),
        ('active_members_90d', 'count'),
        ('retention_rate_90d', 'rate'),
        ('repeat_purchase_rate', 'rate'),
        ('average_order_value_12m', 'currency'),
        ('revenue_per_member_12m', 'currency'),
        ('purchase_frequency_12m', 'number'),
        ('points_outstanding', 'points'),
        ('points_liability', 'currency'),
        ('points_issued', 'points'),
        ('points_redeemed', 'points'),
        ('points_expired', 'points'),
        ('redemption_rate', 'rate'),
        ('breakage_rate', 'rate'),
        ('breakage_estimate', 'rate'),
        ('deferred_revenue', 'currency'),
        ('members_per_tier', 'count'),
        ('customers_per_rfm_segment', 'count'),
        ('customers_per_lifecycle_stage', 'count'),
        ('customers_per_channel_mix', 'count'),
        ('omnichannel_share', 'rate'),
        ('average_spend', 'currency'),
        ('revenue', 'currency'),
        ('orders', 'count'),
        ('average_order_value', 'currency'),
        ('active_members', 'count'),
        ('retention_rate', 'rate'),
        ('churn_rate', 'rate'),
        ('enrolments', 'count'),
        ('tier_movements', 'count'),
        ('paying_members', 'count'),
        ('membership_renewal_rate', 'rate'),
        ('partner_transactions', 'count'),
        ('partner_matched_share', 'rate'),
        ('partner_points_issued', 'points')
),

purchases as (
    select *
    from events
    where is_completed_purchase and customer_id is not null and occurred_on <= getvariable('as_of')
),

recent_purchases as (
    select * from purchases where occurred_on > getvariable('as_of') - interval 12 month
),

buyers_by_month as (
    select distinct customer_id, date_trunc('month', occurred_on) as month from purchases
),

-- A customer record in a channel makes a member of it.
members_by_source as (
    select source, count(distinct customer_id) as members from source_records group by source
),

-- A source's record is matched when its customer also has a record in another source.
sources_per_customer as (
    select customer_id, count(distinct source) as sources from source_records group by customer_id
),

-- Points in money (README "Points in money"), at the end of every month since the first
-- ledger entry (the current month ends at the as-of date): points outstanding, what they
-- are worth, the breakage the program's own history shows and the deferred revenue.
-- breakage_estimate counts only lots whose expiry date has passed: of the points they
-- issued, the share that expired unspent (breakage_rate, by contrast, divides by every
-- point issued so far, most of which cannot have expired yet). Erased people's lots stop
-- expiring at their erasure, so they are left out of the estimate.
month_ends as (
    select month, least(month + interval 1 month, cast(getvariable('as_of') as timestamp) + interval 1 day) as ends_at
    from range(
        (select date_trunc('month', min(occurred_at)) from ledger),
        date_trunc('month', cast(getvariable('as_of') as timestamp)) + interval 1 month,
        interval 1 month
    ) as months (month)
),

net_points_by_month as (
    select date_trunc('month', occurred_at) as month, sum(points) as net_points
    from ledger
    group by all
),

erased_customers as (
    select distinct customer_id from ledger where entry_type = 'erasure'
),

resolved_lots_by_month as (
    select date_trunc('month', resolved_at) as month, sum(issued) as issued, sum(expired) as expired
    from (
        select expires_at as resolved_at, points as issued, 0 as expired
        from ledger anti join erased_customers using (customer_id)
        where points > 0 and expires_at < cast(getvariable('as_of') as timestamp) + interval 1 day
        union all
        select occurred_at, 0, -points
        from ledger anti join erased_customers using (customer_id)
        where entry_type = 'expire'
    )
    group by all
),

points_in_money as (
    select
        month_ends.month,
        sum(coalesce(net_points_by_month.net_points, 0)) over through_month as points_outstanding,
        sum(coalesce(resolved_lots_by_month.expired, 0)) over through_month
            / nullif(sum(coalesce(resolved_lots_by_month.issued, 0)) over through_month, 0) as breakage_estimate
    from month_ends
    left join net_points_by_month using (month)
    left join resolved_lots_by_month using (month)
    window through_month as (order by month_ends.month rows unbounded preceding)
),

-- Deferred revenue: the liability times the share of it expected to be redeemed (one
-- minus the breakage estimate). Without a lot past its expiry date there is no estimate,
-- and every point is assumed redeemed: the deferred revenue is the whole liability.
points_in_money_valued as (
    select
        points_in_money.*,
        points_in_money.points_outstanding * settings.point_value as points_liability,
        points_in_money.points_outstanding * settings.point_value
            * (1 - coalesce(points_in_money.breakage_estimate, 0)) as deferred_revenue
    from points_in_money
    cross join settings
),

-- Paying members: customers who held a paid membership (a known plan, fee not refunded) at any
-- time in the 12 months up to the as-of date. revenue_per_member_12m and retention_rate_90d
-- compare them ('paying') with every other customer ('not paying').
paying_customers as (
    select distinct customer_id
    from memberships
    where status not in ('refunded', 'unknown_plan')
        and starts_on <= getvariable('as_of')
        and ends_at > cast(getvariable('as_of') as timestamp) + interval 1 day - interval 12 month
),

customers_by_paying as (
    select
        customers.customer_id,
        case when paying_customers.customer_id is not null then 'paying' else 'not paying' end as paying
    from customers
    left join paying_customers using (customer_id)
),

-- A period of a renewing plan can be judged once it was renewed or its grace days are over.
renewable_periods as (
    select memberships.is_renewed
    from memberships
    join membership_plans using (plan)
    where membership_plans.renews
        and memberships.status not in ('refunded', 'unknown_plan')
        and (memberships.is_renewed
             or memberships.ends_at + to_days(membership_plans.renewal_grace_days)
                < cast(getvariable('as_of') as timestamp) + interval 1 day)
),

snapshot as (
    select 'members' as kpi, 'all' as dimension, count(*)::double as value from customers
    union all
    select 'members', source, members from members_by_source
    union all
    select 'customer_records', source, count(*) from source_records group by source
    union all
    select 'records_per_customer', 'all', (select count(*) from source_records)::double / nullif(count(*), 0) from customers
    union all
    select 'identity_match_rate', source_records.source,
           avg(case when sources_per_customer.sources > 1 then 1.0 else 0.0 end)
    from source_records join sources_per_customer using (customer_id)
    group by source_records.source
    union all
    select 'active_members_30d', 'all', count(distinct customer_id)
    from purchases where occurred_on > getvariable('as_of') - interval 30 day
    union all
    select 'active_members_90d', 'all', count(distinct customer_id)
    from purchases where occurred_on > getvariable('as_of') - interval 90 day
    union all
    -- Of the customers who bought in the 90 days before the last 90, the share who bought again in the last 90.
    select 'retention_rate_90d', 'all', avg(case when again.customer_id is not null then 1.0 else 0.0 end)
    from (
        select distinct customer_id from purchases
        where occurred_on > getvariable('as_of') - interval 180 day and occurred_on <= getvariable('as_of') - interval 90 day
    ) as before
    left join (
        select distinct customer_id from purchases where occurred_on > getvariable('as_of') - interval 90 day
    ) as again using (customer_id)
    union all
    select 'repeat_purchase_rate', 'all', avg(case when frequency >= 2 then 1.0 else 0.0 end)
    from segments where frequency > 0
    union all
    select 'average_order_value_12m', 'all', avg(amount) from recent_purchases
    union all
    select 'revenue_per_member_12m', 'all', (select sum(amount) from recent_purchases) / nullif(count(*), 0) from customers
    union all
    select 'purchase_frequency_12m', 'all', count(*)::double / nullif(count(distinct customer_id), 0) from recent_purchases
    union all
    select 'points_outstanding', 'all', coalesce(sum(points_balance), 0) from balances
    union all
    -- What the outstanding points are worth (program file's point_value); null when it is not set.
    select 'points_liability', 'all', coalesce(sum(points_balance), 0) * any_value(settings.point_value)
    from settings left join balances on true
    union all
    select 'points_issued', 'all', coalesce(sum(points), 0) from ledger where points > 0
    union all
    select 'points_redeemed', 'all', coalesce(-sum(points), 0) from ledger where entry_type = 'redeem'
    union all
    select 'points_expired', 'all', coalesce(-sum(points), 0) from ledger where entry_type = 'expire'
    union all
    select 'redemption_rate', 'all',
           coalesce(-sum(points) filter (where entry_type = 'redeem'), 0) / nullif(sum(points) filter (where points > 0), 0)
    from ledger
    union all
    select 'breakage_rate', 'all',
           coalesce(-sum(points) filter (where entry_type = 'expire'), 0) / nullif(sum(points) filter (where points > 0), 0)
    from ledger
    union all
    select 'breakage_estimate', 'all', breakage_estimate
    from points_in_money_valued qualify month = max(month) over ()
    union all
    select 'deferred_revenue', 'all', deferred_revenue
    from points_in_money_valued qualify month = max(month) over ()
    union all
    select 'members_per_tier', tier, count(*) from balances group by tier
    union all
    select 'customers_per_rfm_segment', rfm_segment, count(*) from segments group by rfm_segment
    union all
    select 'customers_per_lifecycle_stage', lifecycle_stage, count(*) from segments group by lifecycle_stage
    union all
    select 'customers_per_channel_mix', channel_mix, count(*) from segments group by channel_mix
    union all
    select 'omnichannel_share', 'all', avg(case when purchase_channels >= 2 then 1.0 else 0.0 end)
    from segments where purchase_channels > 0
    union all
    select 'average_spend', case when purchase_channels >= 2 then 'omnichannel' else 'single channel' end,
           avg(historical_value)
    from segments where purchase_channels > 0 group by 2
    union all
    -- Paying members now: customers with a membership period running past the as-of date.
    select 'paying_members', 'all', count(distinct customer_id) from memberships where status = 'active'
    union all
    select 'paying_members', plan, count(distinct customer_id) from memberships where status = 'active' group by plan
    union all
    select 'membership_renewal_rate', 'all', avg(case when is_renewed then 1.0 else 0.0 end)
    from renewable_periods having count(*) > 0  -- no row before any period can be judged
    union all
    select 'revenue_per_member_12m', customers_by_paying.paying,
           coalesce(sum(spend.amount), 0) / count(distinct customers_by_paying.customer_id)
    from customers_by_paying
    left join (select customer_id, sum(amount) as amount from recent_purchases group by customer_id) as spend
        using (customer_id)
    group by customers_by_paying.paying
    union all
    select 'retention_rate_90d', customers_by_paying.paying, avg(case when again.customer_id is not null then 1.0 else 0.0 end)
    from (
        select distinct customer_id from purchases
        where occurred_on > getvariable('as_of') - interval 180 day and occurred_on <= getvariable('as_of') - interval 90 day
    ) as before
    join customers_by_paying using (customer_id)
    left join (
        select distinct customer_id from purchases where occurred_on > getvariable('as_of') - interval 90 day
    ) as again using (customer_id)
    group by customers_by_paying.paying
    union all
    -- Per partner (as delivered, known to the program or not), sales up to the as-of date.
    select 'partner_transactions', partner, count(*) from partner_transactions group by partner
    union all
    select 'partner_matched_share', partner, avg(case when is_matched then 1.0 else 0.0 end)
    from partner_transactions group by partner
    union all
    select 'partner_points_issued', partner, sum(points) from partner_transactions group by partner
),

monthly as (
    select 'revenue' as kpi, strftime(occurred_on, '%Y-%m') as period, channel as dimension, sum(amount)::double as value
    from purchases group by all
    union all
    select 'orders', strftime(occurred_on, '%Y-%m'), channel, count(*) from purchases group by all
    union all
    select 'average_order_value', strftime(occurred_on, '%Y-%m'), 'all', avg(amount) from purchases group by all
    union all
    select 'active_members', strftime(month, '%Y-%m'), 'all', count(*) from buyers_by_month group by all
    union all
    -- Of the customers who bought in the month before, the share who bought in this one.
    select 'retention_rate', strftime(this_month.month, '%Y-%m'), 'all',
           avg(case when later.customer_id is not null then 1.0 else 0.0 end)
    from (select month + interval 1 month as month, customer_id from buyers_by_month) as this_month
    left join buyers_by_month as later using (customer_id, month)
    where this_month.month <= getvariable('as_of')
    group by all
    union all
    select 'churn_rate', strftime(this_month.month, '%Y-%m'), 'all',
           avg(case when later.customer_id is null then 1.0 else 0.0 end)
    from (select month + interval 1 month as month, customer_id from buyers_by_month) as this_month
    left join buyers_by_month as later using (customer_id, month)
    where this_month.month <= getvariable('as_of')
    group by all
    union all
    select 'enrolments', strftime(registered_at, '%Y-%m'), source, count(*)
    from match_input
    where source <> 'callcenter' and cast(registered_at as date) <= getvariable('as_of')
    group by all
    union all
    select 'points_issued', strftime(occurred_at, '%Y-%m'), entry_type, sum(points)
    from ledger where points > 0 group by all
    union all
    select 'points_redeemed', strftime(occurred_at, '%Y-%m'), 'all', -sum(points)
    from ledger where entry_type = 'redeem' group by all
    union all
    select 'points_expired', strftime(occurred_at, '%Y-%m'), 'all', -sum(points)
    from ledger where entry_type = 'expire' group by all
    union all
    select 'points_outstanding', strftime(month, '%Y-%m'), 'all', points_outstanding from points_in_money_valued
    union all
    -- Months without a value (no point_value, no lot past its expiry yet) have no row.
    select 'points_liability', strftime(month, '%Y-%m'), 'all', points_liability
    from points_in_money_valued where points_liability is not null
    union all
    select 'breakage_estimate', strftime(month, '%Y-%m'), 'all', breakage_estimate
    from points_in_money_valued where breakage_estimate is not null
    union all
    select 'deferred_revenue', strftime(month, '%Y-%m'), 'all', deferred_revenue
    from points_in_money_valued where deferred_revenue is not null
    union all
    select 'tier_movements', strftime(valid_from, '%Y-%m'), change || ' to ' || tier, count(*)
    from tier_history where cast(valid_from as date) <= getvariable('as_of') group by all
),

measures as (
    select kpi, 'as_of' as period, dimension, value::double as value from snapshot
    union all
    select kpi, period, dimension, value::double from monthly
)

select
    measures.kpi,
    measures.period,
    measures.dimension,
    measures.value,
    coalesce(units.unit, error('marts.kpis: no unit for kpi ' || measures.kpi)) as unit
from measures
left join units using (kpi)
order by measures.kpi, measures.period, measures.dimension
