-- One row per request to be forgotten: the latest delivery of each request_id, its
-- identifiers standardized as the customer-record tables standardize them, so that a
-- request and a record holding the same e-mail or phone compare equal. Once a run has
-- applied a request, its e-mail and phone are emptied in raw (assets/privacy/erasure.py):
-- the suppression list keeps their salted hashes, this table keeps none of them.
with

latest as (
    select * from latest_of('raw.erasure_requests', ['request_id'])
),

standardized as (
    select
        request_id,
        standardize_email(email) as email,
        standardize_phone(phone) as phone_e164,
        source,
        source_record_id,
        received_at,
        _delivered_on as delivered_on,
        _file as source_file
    from latest
)

select * from standardized
order by request_id
