-- The customer_id changes of this run: records that belonged to one customer and now
-- belong to another. 'steward' when a moved record is named by a steward's decision
-- applied in this run (identity.steward_decisions); otherwise 'merged' when the old id
-- disappeared into a surviving one, 'split' when the old id lives on elsewhere and some
-- of its records left it.
with

previous as (select * from identity.previous_source_records),
current as (select * from identity.source_records),
steward_decisions as (select * from identity.steward_decisions),

steward_records as (
    select unique_id_a as unique_id from steward_decisions where status = 'applied'
    union
    select unique_id_b from steward_decisions where status = 'applied'
),

moved_records as (
    select
        previous.customer_id as old_customer_id,
        current.customer_id as new_customer_id,
        source || ':' || source_record_id as unique_id
    from previous
    join current using (source, source_record_id)
    where previous.customer_id <> current.customer_id
),

moves as (
    select
        old_customer_id,
        new_customer_id,
        count(*) as records_moved,
        count(steward_records.unique_id) > 0 as is_steward_move
    from moved_records
    left join steward_records using (unique_id)
    group by all
),

surviving_ids as (
    select distinct customer_id from current
)

select
    moves.old_customer_id,
    moves.new_customer_id,
    case
        when moves.is_steward_move then 'steward'
        when surviving_ids.customer_id is null then 'merged'
        else 'split'
    end as reason,
    moves.records_moved,
    getvariable('as_of') as changed_on
from moves
left join surviving_ids on surviving_ids.customer_id = moves.old_customer_id
order by old_customer_id, new_customer_id
