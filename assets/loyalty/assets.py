"""Stage loyalty: the program's rules, the points ledger, tiers and balances."""

import dagster as dg

from assets.loyalty.program import PROGRAM_TABLES, ProgramError, write_program_tables
from assets.loyalty.settling import count_violations, settle_debits
from assets.shared.lineage import step_reads
from assets.shared.settings import PipelineSettings
from assets.shared.sql_assets import sql_asset, table_metadata, table_spec


# Reads no table: its one input is the program file (settings.program_file), which is no
# asset, so after editing the file rebuild from here (job loyalty_and_marts).
@dg.multi_asset(
    specs=[
        table_spec(
            kinds=("duckdb", "python"),
            key=["loyalty", t],
            description=f"The program file's {t.removeprefix('program_')}, as a table.",
        )
        for t in PROGRAM_TABLES
    ],
    group_name="loyalty",
)
def program(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Load and validate the program file (settings.program_file)."""
    try:
        rules = settings.program()
    except ProgramError as err:
        raise dg.Failure(description=str(err)) from None
    with settings.build(context.run_id) as con:
        write_program_tables(con, rules)
        for table in PROGRAM_TABLES:
            yield dg.MaterializeResult(
                asset_key=["loyalty", table], metadata=table_metadata(con, f"loyalty.{table}")
            )


qualifying_events = sql_asset(
    "loyalty/qualifying_events",
    group="loyalty",
    description="Purchases and returns with their base points and how long each counts towards a tier.",
)

tier_history = sql_asset(
    "loyalty/tier_history",
    group="loyalty",
    description="Every tier each customer held above the first: upgrades at once, downgrades after the grace period.",
)

memberships = sql_asset(
    "loyalty/memberships",
    group="loyalty",
    description="Every paid membership period bought by a fee, with its status as of the run.",
)

membership_rewards = sql_asset(
    "loyalty/membership_rewards",
    group="loyalty",
    description="The paid membership's bonus on purchases inside a period, and its reversals.",
)


@dg.asset_check(asset=memberships, blocking=True, description="One row per fee order.")
def memberships_one_row_per_fee(
    context: dg.AssetCheckExecutionContext, settings: PipelineSettings
) -> dg.AssetCheckResult:
    with settings.build(context.run.run_id) as con:
        duplicates = con.execute(
            "select count(*) - count(distinct order_id) from loyalty.memberships"
        ).fetchall()[0][0]
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_order_ids": duplicates})


# Partner earning: partner sales matched to customers through identity (README, "Partner earning").
partner_transactions = sql_asset(
    "loyalty/partner_transactions",
    group="loyalty",
    description="Every partner sale, matched to one customer or not (with the reason), and the points it earns.",
)

partner_earnings = sql_asset(
    "loyalty/partner_earnings",
    group="loyalty",
    description="The ledger's credits for matched partner sales (rule partner).",
)

partner_unmatched = sql_asset(
    "loyalty/partner_unmatched",
    group="loyalty",
    description="Partner sales no customer earns for, with the reason; no e-mail or phone.",
)

campaign_assignments = sql_asset(
    "loyalty/campaign_assignments",
    group="loyalty",
    description="Each started campaign's audience as of its start, and the arm (treatment or holdout) of each member.",
)

campaign_rewards = sql_asset(
    "loyalty/campaign_rewards",
    group="loyalty",
    description="The campaign points of treated members' purchases in the period, within the cap and the budget.",
)

referrals = sql_asset(
    "loyalty/referrals",
    group="loyalty",
    description="Every referral seen (a sign-up with a referral code): rewarded, pending, rejected or capped, and why.",
)

referral_rewards = sql_asset(
    "loyalty/referral_rewards",
    group="loyalty",
    description="The referrer's and the referred customer's points of each rewarded referral, as ledger movements.",
)

point_movements = sql_asset(
    "loyalty/point_movements",
    group="loyalty",
    description="Every credit and requested debit the program's rules give, before the balance rules.",
)


# settled_debits runs these models in rounds (assets/loyalty/settling.py); both tables come out
# of the same rounds, so each depends on everything the rounds read from outside the step
# (loyalty.customers_to_settle is the step's own list of customers still settling).
SETTLING_MODELS = ["loyalty/debits", "loyalty/lot_expiry", "loyalty/debit_checks"]
SETTLING_DEPS = [t.split(".") for t in step_reads(SETTLING_MODELS, ["loyalty.customers_to_settle"])]


@dg.multi_asset(
    specs=[
        table_spec(
            kinds=("duckdb", "python"),
            key=["loyalty", "debits"],
            deps=SETTLING_DEPS,
            description="Every requested debit and what the balance allowed: applied, rejected or capped.",
        ),
        table_spec(
            kinds=("duckdb", "python"),
            key=["loyalty", "lot_expiry"],
            deps=SETTLING_DEPS,
            description="Every credit as a lot of points, and how much of it expired (oldest spent first).",
        ),
    ],
    group_name="loyalty",
)
def settled_debits(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Decide each redemption and reversal against the points available at its moment."""
    with settings.build(context.run_id) as con:
        rounds = settle_debits(con)
        yield dg.MaterializeResult(
            asset_key=["loyalty", "debits"],
            metadata={
                **table_metadata(con, "loyalty.debits"),
                "settling_rounds": rounds,
                "rejected": con.execute(
                    "select count(*) from loyalty.debits where status = 'rejected'"
                ).fetchall()[0][0],
            },
        )
        yield dg.MaterializeResult(
            asset_key=["loyalty", "lot_expiry"], metadata=table_metadata(con, "loyalty.lot_expiry")
        )


ledger = sql_asset(
    "loyalty/ledger",
    group="loyalty",
    description="Every points movement, traceable to the event and rule that caused it.",
)

balances = sql_asset(
    "loyalty/balances",
    group="loyalty",
    description="Points balance, points expiring soon, tier and progress to the next tier of every customer.",
)


def _count(
    context: dg.AssetCheckExecutionContext, settings: PipelineSettings, invariant: str
) -> int:
    with settings.build(context.run.run_id) as con:
        return count_violations(con, invariant)


@dg.asset_check(asset=ledger, blocking=True, description="entry_id is unique.")
def ledger_entry_ids_unique(
    context: dg.AssetCheckExecutionContext, settings: PipelineSettings
) -> dg.AssetCheckResult:
    duplicates = _count(context, settings, "duplicate_entry_ids")
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_entry_ids": duplicates})


@dg.asset_check(
    asset=ledger,
    blocking=True,
    description="In time order (credits, expiries, then debits within a moment) no balance goes below zero.",
)
def ledger_running_balance_never_negative(
    context: dg.AssetCheckExecutionContext, settings: PipelineSettings
) -> dg.AssetCheckResult:
    negative = _count(context, settings, "negative_running_balances")
    return dg.AssetCheckResult(
        passed=negative == 0, metadata={"entries_with_a_negative_running_balance": negative}
    )


@dg.asset_check(
    asset=balances,
    blocking=True,
    description="Every balance equals the sum of the customer's ledger.",
)
def balances_reconcile_to_ledger(
    context: dg.AssetCheckExecutionContext, settings: PipelineSettings
) -> dg.AssetCheckResult:
    off = _count(context, settings, "balances_off_their_ledger")
    missing = _count(context, settings, "ledger_customers_without_balance")
    return dg.AssetCheckResult(
        passed=off == 0 and missing == 0,
        metadata={"customers_not_reconciled": off, "ledger_customers_without_balance": missing},
    )
