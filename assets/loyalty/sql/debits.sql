-- Every debit the rules ask for (a redemption, a refund, a store return) and what the
-- balance allowed of it. This model starts every debit as pending; assets/points.py
-- then settles them in rounds (loyalty/debit_checks.sql): a redemption above the points
-- available at its moment is rejected, a reversal above them takes what is there.
select
    entry_id,
    customer_id,
    entry_type,
    rule,
    occurred_at,
    source,
    source_event_id,
    -points as requested_points,
    cast(null as bigint) as applied_points,
    cast(null as bigint) as available_before,
    'pending' as status,
    cast(null as varchar) as reason
from loyalty.point_movements
where points < 0
