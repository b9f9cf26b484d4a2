-- One row per customer record of every source, with the customer it belongs to.
-- customer_ids are stable: each old id goes to the new cluster holding most of its
-- records (on a split, the larger part keeps it; ties go to the lower cluster id), and a
-- cluster claimed by several old ids keeps the oldest (on a merge, the older id
-- survives). Oldest means assigned first: id_assigned_on is the as-of date of the run
-- that first gave the id (not when the person joined: that is core.customers.customer_since).
-- Only clusters no old id claims get a new id, derived from their earliest-registered
-- record; identity.id_changes records every merge and split.
with

match_input as (select * from identity.match_input),
clusters as (select * from identity.clusters),
previous as (select * from identity.previous_source_records),

clustered as (
    select
        match_input.unique_id,
        match_input.source,
        match_input.source_record_id,
        match_input.registered_at,
        coalesce(clusters.cluster_id, match_input.unique_id) as cluster_id
    from match_input
    left join clusters using (unique_id)
),

old_ids as (
    select customer_id, min(id_assigned_on) as id_assigned_on
    from previous
    group by customer_id
),

claims as (
    select clustered.cluster_id, previous.customer_id, count(*) as records
    from clustered
    join previous using (source, source_record_id)
    group by all
),

id_homes as (
    select customer_id, cluster_id
    from claims
    qualify row_number() over (partition by customer_id order by records desc, cluster_id) = 1
),

kept_ids as (
    select id_homes.cluster_id, id_homes.customer_id, old_ids.id_assigned_on
    from id_homes
    join old_ids using (customer_id)
    qualify row_number() over (
        partition by id_homes.cluster_id order by old_ids.id_assigned_on, id_homes.customer_id
    ) = 1
),

anchors as (
    select
        cluster_id,
        arg_min(unique_id, (coalesce(registered_at, timestamp '9999-12-31'), unique_id)) as anchor_record
    from clustered
    group by cluster_id
),

new_ids as (
    select
        anchors.cluster_id,
        -- A derived id that an old customer already had gets the run date mixed in.
        case
            when 'C' || upper(substr(md5(anchor_record), 1, 12)) in (select customer_id from old_ids)
                then 'C' || upper(substr(md5(anchor_record || '@' || getvariable('as_of')), 1, 12))
            else 'C' || upper(substr(md5(anchor_record), 1, 12))
        end as customer_id,
        getvariable('as_of') as id_assigned_on
    from anchors
    anti join kept_ids using (cluster_id)
),

cluster_ids as (
    select * from kept_ids
    union all
    select * from new_ids
)

select
    clustered.source,
    clustered.source_record_id,
    cluster_ids.customer_id,
    cluster_ids.id_assigned_on,
    count(*) over (partition by clustered.cluster_id) as records_in_customer
from clustered
join cluster_ids using (cluster_id)
order by customer_id, source, source_record_id
