-- The customer_id changes of this run: records that belonged to one customer and now
-- belong to another. 'merged' when the old id disappeared into a surviving one,
-- 'split' when the old id lives on elsewhere and some of its records left it.
with

previous as (select * from identity.previous_source_records),
current as (select * from identity.source_records),

moves as (
    select
        previous.customer_id as old_customer_id,
        current.customer_id as new_customer_id,
        count(*) as records_moved
    from previous
    join current using (source, source_record_id)
    where previous.customer_id <> current.customer_id
    group by all
),

surviving_ids as (
    select distinct customer_id from current
)

select
    moves.old_customer_id,
    moves.new_customer_id,
    case when surviving_ids.customer_id is null then 'merged' else 'split' end as reason,
    moves.records_moved,
    getvariable('as_of') as changed_on
from moves
left join surviving_ids on surviving_ids.customer_id = moves.old_customer_id
order by old_customer_id, new_customer_id
