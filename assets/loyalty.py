"""Stage loyalty: the program's rules, the points ledger and balances with tiers."""

import dagster as dg

from assets.program import ProgramError, write_program_tables
from assets.sql_assets import sql_asset, table_metadata
from pipelines.settings import PipelineSettings

PROGRAM_TABLES = ["program_earn_rates", "program_tiers", "program_rfm_segments"]


@dg.multi_asset(
    specs=[dg.AssetSpec(["loyalty", t], description=f"The program file's {t.removeprefix('program_')}, as a table.")
           for t in PROGRAM_TABLES],
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
            yield dg.MaterializeResult(asset_key=["loyalty", table], metadata=table_metadata(con, f"loyalty.{table}"))


ledger = sql_asset(
    "loyalty/ledger",
    deps=["core/events", "loyalty/program_earn_rates"],
    group="loyalty",
    description="Every points movement, traceable to the event and rule that caused it.",
)

balances = sql_asset(
    "loyalty/balances",
    deps=["core/customers", "loyalty/ledger", "loyalty/program_tiers"],
    group="loyalty",
    description="Points balance, tier and progress to the next tier of every customer, as of the run's date.",
)


@dg.asset_check(asset=ledger, blocking=True, description="entry_id is unique.")
def ledger_entry_ids_unique(context: dg.AssetCheckExecutionContext, settings: PipelineSettings) -> dg.AssetCheckResult:
    with settings.build(context.run.run_id) as con:
        duplicates = con.execute(
            "select count(*) from (select entry_id from loyalty.ledger group by 1 having count(*) > 1)"
        ).fetchall()[0][0]
    return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_entry_ids": duplicates})


@dg.asset_check(asset=balances, blocking=True, description="Every balance equals the sum of the customer's ledger.")
def balances_reconcile_to_ledger(context: dg.AssetCheckExecutionContext, settings: PipelineSettings) -> dg.AssetCheckResult:
    with settings.build(context.run.run_id) as con:
        off, points_ledger, points_balances = con.execute(
            """
            with ledger_sums as (select customer_id, sum(points) as points from loyalty.ledger group by 1)
            select
                count(*) filter (where balances.points_balance <> coalesce(ledger_sums.points, 0)),
                (select coalesce(sum(points), 0) from loyalty.ledger),
                sum(balances.points_balance)
            from loyalty.balances as balances
            left join ledger_sums using (customer_id)
            """
        ).fetchall()[0]
    return dg.AssetCheckResult(
        passed=off == 0 and points_ledger == points_balances,
        metadata={"customers_not_reconciled": off, "ledger_points": int(points_ledger), "balance_points": int(points_balances or 0)},
    )
