-- One row per partner sale: the latest delivery of each partner_txn_id, its e-mail and
-- phone standardized exactly as the customer-record tables standardize theirs, so that
-- loyalty.partner_earnings can match them to identity's records by equality.
with

latest as (
    select * from latest_of('raw.partner_earnings', ['partner_txn_id'])
),

standardized as (
    select
        partner_txn_id,
        trim(partner) as partner,
        standardize_email(email) as email,
        standardize_phone(phone) as phone_e164,
        -- The mailbox as identity compares it (identity.record_keys' email_key).
        email_match_key(standardize_email(email)) as email_key,
        occurred_at,
        amount,
        _delivered_on as delivered_on,
        _file as source_file
    from latest
)

select * from standardized
