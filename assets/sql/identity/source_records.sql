-- One row per customer record of every source, with the customer it belongs to.
-- A customer_id is derived from the earliest-registered record of its cluster, so a
-- rerun on unchanged inputs gives every record the same id.
with

match_input as (select * from identity.match_input),
clusters as (select * from identity.clusters),

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

anchored as (
    select
        *,
        first_value(unique_id) over (
            partition by cluster_id order by registered_at nulls last, unique_id
        ) as anchor_record,
        count(*) over (partition by cluster_id) as records_in_customer
    from clustered
)

select
    source,
    source_record_id,
    'C' || upper(substr(md5(anchor_record), 1, 12)) as customer_id,
    records_in_customer
from anchored
order by customer_id, source, source_record_id
