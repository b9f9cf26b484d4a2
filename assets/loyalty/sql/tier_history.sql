-- Every tier a customer has held above the first, with when it started and ended.
-- A customer qualifies for the highest tier whose threshold the rolling window's
-- qualifying value (spend or base points, as the program says) reaches. Upgrades take
-- effect at once; a downgrade only once the customer has qualified lower for the whole
-- grace period: the tier held at time t is the highest tier qualified for at any moment
-- in [t - grace, t]. Customers who never rose above the first tier have no rows.
with

qualifying_events as (select * from loyalty.qualifying_events),
tiers as (select * from loyalty.program_tiers),
settings as (select * from loyalty.program_settings),

as_of as (
    select cast(getvariable('as_of') as timestamp) + interval 1 day as ends_at
),

-- Each event adds its value when it happens and takes it off when it stops counting.
changes as (
    select customer_id, occurred_at as changed_at,
           case settings.qualify_on when 'spend' then qualifying_spend else base_points end as delta
    from qualifying_events, settings
    union all
    select customer_id, counts_until,
           -case settings.qualify_on when 'spend' then qualifying_spend else base_points end
    from qualifying_events, settings
),

running as (
    select
        customer_id,
        changed_at,
        sum(sum(delta)) over (partition by customer_id order by changed_at rows unbounded preceding) as qualifying_value
    from changes, as_of
    where changed_at < as_of.ends_at
    group by customer_id, changed_at
),

-- Thresholds ascend with the rank from 0 (assets/loyalty/program.py checks it), so the
-- qualified rank is how many thresholds the value reaches: a lookup in a short list,
-- where a join would sort every moment.
thresholds as (
    select list(cast(threshold as double) order by tier_rank) as thresholds from tiers
),

qualified as (
    select
        running.customer_id,
        running.changed_at,
        len(list_filter(
            thresholds.thresholds, lambda threshold: threshold <= cast(greatest(running.qualifying_value, 0) as double)
        )) as qualified_rank
    from running
    cross join thresholds
),

-- Runs of moments with the same qualified tier (the first tier is where everyone starts).
islands as (
    select customer_id, changed_at as starts_at, qualified_rank,
           lead(changed_at) over (partition by customer_id order by changed_at) as ends_at
    from (
        select *, lag(qualified_rank, 1, 1) over (partition by customer_id order by changed_at) as previous_rank
        from qualified
    )
    where qualified_rank <> previous_rank
),

-- The held tier can only change when an island starts or when one's grace runs out.
moments as (
    select customer_id, starts_at as moment from islands
    union
    select islands.customer_id, islands.ends_at + to_months(settings.downgrade_grace_months)
    from islands, settings, as_of
    where islands.ends_at + to_months(settings.downgrade_grace_months) < as_of.ends_at
),

held as (
    select
        moments.customer_id,
        moments.moment,
        coalesce(max(islands.qualified_rank), 1) as tier_rank
    from moments
    cross join settings
    left join islands
        on islands.customer_id = moments.customer_id
        and islands.starts_at <= moments.moment
        and coalesce(islands.ends_at + to_months(settings.downgrade_grace_months), 'infinity'::timestamp) > moments.moment
    group by all
),

tier_changes as (
    select *, lag(tier_rank, 1, 1) over (partition by customer_id order by moment) as previous_rank
    from held
    qualify tier_rank <> previous_rank
),

periods as (
    select
        customer_id,
        tier_rank,
        moment as valid_from,
        lead(moment) over (partition by customer_id order by moment) as valid_to,
        case when tier_rank > previous_rank then 'upgrade' else 'downgrade' end as change
    from tier_changes
)

select
    periods.customer_id,
    tiers.tier,
    periods.tier_rank,
    tiers.earn_multiplier,
    periods.valid_from,
    periods.valid_to,
    periods.change
from periods
join tiers using (tier_rank)
