"""Stage marts: customer value, segments, segment memberships, programme KPIs and their history."""

import dagster as dg

from assets.loyalty.program import ProgramError
from assets.marts.custom_segments import write_custom_segment_members
from assets.marts.customer_value import write_customer_value
from assets.marts.kpi_history import record_kpi_history
from assets.shared.lineage import step_reads
from assets.shared.settings import PipelineSettings
from assets.shared.sql_assets import sql_asset, table_metadata, table_spec

purchase_summary = sql_asset(
    "marts/purchase_summary",
    group="marts",
    description="Every buying customer's purchase history as lifetime-value models take it.",
)


@dg.multi_asset(
    specs=[
        table_spec(
            ["marts", "customer_value"],
            description="Predicted 12-month value per buying customer: BG/NBD with Gamma-Gamma, "
            "fitted on this run's data; empty where a fit is degenerate or failed (marts.clv_fit).",
            deps=[["marts", "purchase_summary"]],
            kinds=("duckdb", "python"),
            owners=("team:analytics",),
        ),
        table_spec(
            ["marts", "clv_fit"],
            description="Each lifetime-value model's fit: fitted, degenerate or not fitted, why, "
            "and its parameters.",
            deps=[["marts", "purchase_summary"]],
            kinds=("duckdb", "python"),
            owners=("team:analytics",),
        ),
    ],
    group_name="marts",
    can_subset=False,
)
def customer_value(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Fit BG/NBD and Gamma-Gamma on this run's purchases; predict each buyer's 12-month value
    where the fits can be trusted (assets/marts/customer_value.py)."""
    with settings.build(context.run_id) as con:
        fits = write_customer_value(con)
        for model, fit in fits.items():
            if fit["status"] != "fitted":
                context.log.warning(
                    f"customer value: {model} {fit['status']}, its predictions left empty: {fit['reason']}"
                )
        statuses = {model: fit["status"] for model, fit in fits.items()}
        yield dg.MaterializeResult(
            asset_key=["marts", "customer_value"],
            metadata={
                **table_metadata(con, "marts.customer_value"),
                "fit_status": dg.MetadataValue.json(statuses),
                "model": dg.MetadataValue.json(fits),
            },
        )
        yield dg.MaterializeResult(
            asset_key=["marts", "clv_fit"],
            metadata={**table_metadata(con, "marts.clv_fit"), "model": dg.MetadataValue.json(fits)},
        )


segments = sql_asset(
    "marts/segments",
    group="marts",
    description="One row per customer: RFM, lifecycle, value, channel mix, engagement and occasions.",
)


# Also reads the program file's custom segments, which is no asset (loyalty/program_* is its copy).
@dg.asset(
    key=["marts", "custom_segment_members"],
    deps=[segments, ["loyalty", "balances"]],
    group_name="marts",
    kinds={"duckdb", "sql"},
    owners=["team:marketing"],
)
def custom_segment_members(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    """Members of marketing's own segments, from the program file's conditions."""
    try:
        definitions = settings.program().segmentation.custom
    except ProgramError as err:
        raise dg.Failure(description=str(err)) from None
    with settings.build(context.run_id) as con:
        counts = write_custom_segment_members(con, definitions)
        return dg.MaterializeResult(
            metadata={
                **table_metadata(con, "marts.custom_segment_members"),
                "members": dg.MetadataValue.json(counts),
            }
        )


segment_memberships = sql_asset(
    "marts/segment_memberships",
    group="marts",
    description="Every segment every customer is in, one row each.",
)

campaign_results = sql_asset(
    "marts/campaign_results",
    group="marts",
    description="Each campaign against its holdout: sizes, purchases and spend per member, uplift with its 95% CI, points and cost.",
)

kpis = sql_asset(
    "marts/kpis",
    group="marts",
    description="Programme KPIs as a long table (kpi, period, dimension, value).",
)


# Not a sql_asset: the model reads its own table (the history published so far), which a
# warehouse's first run must create empty first (assets/marts/kpi_history.py).
@dg.asset(
    key=["marts", "kpi_history"],
    deps=[t.split(".") for t in step_reads(["marts/kpi_history"])],
    group_name="marts",
    description="Every run's snapshot KPIs (as-of date, kpi, dimension, value), kept across runs.",
    kinds={"duckdb", "sql"},
    owners=["team:analytics"],
)
def kpi_history(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    """Add this run's snapshot KPIs to the history published so far; a rerun for the same as-of date replaces its rows."""
    with settings.build(context.run_id) as con:
        record_kpi_history(con)
        dates = con.execute("select count(distinct as_of_on) from marts.kpi_history").fetchall()
        return dg.MaterializeResult(
            metadata={**table_metadata(con, "marts.kpi_history"), "as_of_dates": dates[0][0]}
        )
