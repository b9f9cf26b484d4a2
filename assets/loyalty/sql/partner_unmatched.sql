-- Partner sales no customer earns for, with the reason (loyalty.partner_transactions says
-- how each is decided). No e-mail or phone: the partner's own records hold those.
with

partner_transactions as (select * from loyalty.partner_transactions),

unmatched as (
    select partner_txn_id, partner, occurred_at, amount, reason
    from partner_transactions
    where not is_matched
)

select * from unmatched
