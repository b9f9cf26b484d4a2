"""The loyalty stage built by hand, for the tests and the loyalty benchmark that run its models
on small hand-made inputs: the models up to the ledger in the order the asset graph runs
them, and the inputs a scenario without memberships, partner sales or campaigns can leave out.

Imported as `loyalty_models` by tests (pytest puts tests/ on sys.path) and as
`tests.loyalty_models` by the benchmarks.
"""

from __future__ import annotations

from assets.loyalty.settling import settle_debits
from assets.shared.warehouse import run_model

# Everything point_movements reads from the loyalty stage, in dependency order.
BEFORE_POINT_MOVEMENTS = [
    "loyalty/qualifying_events",
    "loyalty/tier_history",
    "loyalty/referrals",
    "loyalty/referral_rewards",
    "loyalty/memberships",
    "loyalty/membership_rewards",
    "loyalty/partner_transactions",
    "loyalty/partner_earnings",
    "loyalty/partner_unmatched",
    "loyalty/campaign_assignments",
    "loyalty/campaign_rewards",
]


def add_missing_inputs(con) -> None:
    """The inputs of referrals, memberships and partner earning, empty where a scenario has
    none: the web and app records' referral codes, web orders' membership_plan, identity's
    e-mail, phone and address keys, and partner sales."""
    for table in ("staging.web_customers", "staging.app_users"):
        con.execute(
            f"create table if not exists {table} (source varchar, source_record_id varchar, "
            "registered_at timestamp, referral_code varchar, referred_by varchar)"
        )
    con.execute("alter table core.events add column if not exists membership_plan varchar")
    con.execute("alter table identity.match_input add column if not exists email_key varchar")
    con.execute("alter table identity.match_input add column if not exists phone_e164 varchar")
    con.execute("alter table identity.match_input add column if not exists street_key varchar")
    con.execute("alter table identity.match_input add column if not exists postcode varchar")
    con.execute(
        "create table if not exists staging.partner_earnings (partner_txn_id varchar, partner varchar, "
        "email_key varchar, phone_e164 varchar, occurred_at timestamp, amount decimal(18, 2))"
    )


def build_ledger(con) -> int:
    """loyalty.point_movements, the settled debits, loyalty.ledger and loyalty.balances from the
    program tables and the inputs already in `con`; returns the settling rounds."""
    add_missing_inputs(con)
    for model in BEFORE_POINT_MOVEMENTS:
        run_model(con, model)
    run_model(con, "loyalty/point_movements")
    rounds = settle_debits(con)
    run_model(con, "loyalty/ledger")
    run_model(con, "loyalty/balances")
    return rounds
