-- Every run's snapshot KPIs, kept across runs: one row per as-of date, kpi and dimension.
-- A run starts from a copy of the published warehouse, so marts.kpi_history is the
-- history as published; this model adds the run's figures to it (the asset creates the
-- empty table on a warehouse's first run). A rerun for an as-of date already in the
-- history replaces that date's rows: one figure per as-of date, the latest computed.
-- A figure a rerun computes again unchanged keeps its recorded_at, so a rerun that
-- changes nothing leaves the table as it was. Monthly KPIs are not kept: every run
-- recomputes them from the whole history of events.
with

previous_history as (select * from marts.kpi_history),
kpis as (select * from marts.kpis),

this_run as (
    select getvariable('as_of')::date as as_of_on, kpi, dimension, value, unit
    from kpis
    where period = 'as_of'
),

other_dates as (
    select * from previous_history where as_of_on <> getvariable('as_of')::date
),

recorded as (
    select
        this_run.as_of_on,
        case
            when previous_history.value is not distinct from this_run.value
                and previous_history.unit is not distinct from this_run.unit
                then previous_history.recorded_at
            else current_timestamp::timestamp
        end as recorded_at,
        this_run.kpi,
        this_run.dimension,
        this_run.value,
        this_run.unit
    from this_run
    left join previous_history using (as_of_on, kpi, dimension)
),

history as (
    select as_of_on, recorded_at, kpi, dimension, value, unit from other_dates
    union all
    select as_of_on, recorded_at, kpi, dimension, value, unit from recorded
)

select * from history
order by as_of_on, kpi, dimension
