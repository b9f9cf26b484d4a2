-- Every debit the rules ask for (a redemption, a refund, a store return) and what the
-- balance allowed of it. This model starts every debit as pending; assets/loyalty/settling.py
-- then settles them in rounds (loyalty/debit_checks.sql): a redemption above the points
-- available at its moment is rejected, a reversal above them takes what is there.
select
    -- The ledger's entry_id: point_movements keys entries by the md5 as a number.
    printf('%032x', entry_key) as entry_id,
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
