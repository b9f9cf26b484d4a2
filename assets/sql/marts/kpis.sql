-- Programme KPIs as a long table: one row per kpi, period and dimension.
-- period is 'as_of' for a snapshot at the run's date, or a month 'YYYY-MM'.
with

customers as (select * from core.customers),
balances as (select * from loyalty.balances),
ledger as (select * from loyalty.ledger),
events as (select * from core.events),
segments as (select * from marts.segments),
source_records as (select * from identity.source_records),

purchases as (
    select *
    from events
    where is_completed_purchase and occurred_on <= getvariable('as_of')
),

snapshot as (
    select 'customers' as kpi, 'all' as dimension, count(*)::double as value from customers
    union all
    select 'customer_records', source, count(*) from source_records group by source
    union all
    select 'records_per_customer', 'all', (select count(*) from source_records)::double / nullif(count(*), 0) from customers
    union all
    select 'members_per_tier', tier, count(*) from balances group by tier
    union all
    select 'customers_per_rfm_segment', rfm_segment, count(*) from segments group by rfm_segment
    union all
    select 'active_members_90d', 'all', count(distinct customer_id)
    from purchases
    where customer_id is not null and occurred_on > getvariable('as_of') - interval 90 day
    union all
    select 'points_outstanding', 'all', coalesce(sum(points_balance), 0) from balances
    union all
    select 'omnichannel_share', 'all',
        avg(case when channels >= 2 then 1.0 else 0.0 end)
    from (
        select customer_id, count(distinct channel) as channels
        from purchases where customer_id is not null group by customer_id
    )
),

monthly as (
    select 'revenue' as kpi, strftime(occurred_on, '%Y-%m') as period, channel as dimension, sum(amount)::double as value
    from purchases group by all
    union all
    select 'orders', strftime(occurred_on, '%Y-%m'), channel, count(*) from purchases group by all
    union all
    select 'active_members', strftime(occurred_on, '%Y-%m'), 'all', count(distinct customer_id)
    from purchases where customer_id is not null group by all
    union all
    select 'points_issued', strftime(occurred_at, '%Y-%m'), entry_type, sum(points)
    from ledger where points > 0 group by all
)

select kpi, 'as_of' as period, dimension, value from snapshot
union all
select kpi, period, dimension, value from monthly
order by kpi, period, dimension
