-- The ledger's credits for matched partner sales (rule 'partner'), in point_movements'
-- union columns. event_id is 'partner:' || partner_txn_id: unique and stable across runs,
-- so the ledger's entry id md5('partner|partner:<txn>') never changes.
with

partner_transactions as (select * from loyalty.partner_transactions),

earnings as (
    select
        customer_id,
        'earn' as entry_type,
        'partner' as rule,
        points,
        occurred_at,
        'partner' as source,
        partner_txn_id as source_event_id,
        'partner:' || partner_txn_id as event_id
    from partner_transactions
    where is_matched
)

select * from earnings
