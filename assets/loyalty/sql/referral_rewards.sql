-- The points of rewarded referrals, as ledger movements (loyalty.point_movements takes them
-- in as they are): one bonus for the referrer and one for the referred customer, both at the
-- qualifying purchase and both named after the referral (event_id = referral_id), so each
-- ledger entry traces back to its row of loyalty.referrals.
with

referrals as (select * from loyalty.referrals),

rewarded as (
    select * from referrals where status = 'rewarded'
)

select
    referrer_customer_id as customer_id,
    'bonus' as entry_type,
    'referral_referrer' as rule,
    referrer_points as points,
    qualified_at as occurred_at,
    source,
    source_record_id as source_event_id,
    referral_id as event_id
from rewarded
union all
select
    referred_customer_id,
    'bonus',
    'referral_referred',
    referred_points,
    qualified_at,
    source,
    source_record_id,
    referral_id
from rewarded
