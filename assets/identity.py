"""Stage identity: which customer records are one person, and their customer_id."""

import json
from pathlib import Path

import dagster as dg

from assets.identity_ids import assign_stable_ids
from assets.matching import match_records
from assets.sql_assets import sql_asset, table_metadata, table_spec
from pipelines.settings import PipelineSettings

CUSTOMER_TABLES = ["web_customers", "app_users", "store_members", "callcenter_contacts"]

match_input = sql_asset(
    "identity/match_input",
    deps=[f"staging/{t}" for t in CUSTOMER_TABLES],
    group="identity",
    description="Every customer record of every source with its matching keys.",
    standardizers=True,
)


@dg.multi_asset(
    specs=[
        table_spec(kinds=("duckdb", "splink"), key=["identity", "clusters"], deps=[["identity", "match_input"]],
                     description="Cluster of every matched record (records matching nothing are absent)."),
        table_spec(kinds=("duckdb", "splink"), key=["identity", "match_evidence"], deps=[["identity", "match_input"]],
                     description="Record pairs linked by the model, with their match probability and weights."),
    ],
    group_name="identity",
)
def splink_matches(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Score candidate pairs with the Splink model, link them, guard against conflicts, cluster.

    The model is trained on this run's records unless settings.identity_model names a
    saved one. The model and Splink's charts go to <reports>/identity/<as-of>/.
    """
    folder = Path(settings.reports_dir) / "identity" / settings.as_of_date().isoformat()
    model = Path(settings.identity_model) if settings.identity_model else None
    if model is not None and not model.is_file():
        raise dg.Failure(description=f"identity_model {model}: no such model file")
    with settings.build(context.run_id) as con:
        records = con.sql("select * from identity.match_input").to_arrow_table()
        result = match_records(records, model=model, charts_dir=folder)
        for table, data in (("clusters", result.clusters), ("match_evidence", result.evidence)):
            con.register("splink_output", data)
            con.execute(f"create or replace table identity.{table} as select * from splink_output")
            con.unregister("splink_output")
        model_path = folder / "splink_model.json"
        model_path.write_text(json.dumps(result.model_json, indent=2), encoding="utf-8")
        guarded = con.execute(
            "select count(*) filter (where not is_linked), count(*) from identity.match_evidence"
        ).fetchall()[0]
        yield dg.MaterializeResult(
            asset_key=["identity", "clusters"],
            metadata={
                **table_metadata(con, "identity.clusters"),
                "model": dg.MetadataValue.path(str(model_path)),
                "model_reused": model is not None,
                **{f"chart_{name}": dg.MetadataValue.path(str(path)) for name, path in result.charts.items()},
            },
        )
        yield dg.MaterializeResult(
            asset_key=["identity", "match_evidence"],
            metadata={
                **table_metadata(con, "identity.match_evidence"),
                "pairs_linked": result.pairs_linked,
                "pairs_kept_apart_by_conflict_guard": guarded[0],
            },
        )


@dg.multi_asset(
    specs=[
        table_spec(kinds=("duckdb", "sql"), key=["identity", "source_records"], deps=[["identity", "match_input"], ["identity", "clusters"]],
                     description="One row per customer record of every source, with its stable customer_id."),
        table_spec(kinds=("duckdb", "sql"), key=["identity", "id_history"], deps=[["identity", "match_input"], ["identity", "clusters"]],
                     description="Every customer_id change of every run: merges and splits, when and how many records."),
    ],
    group_name="identity",
    can_subset=False,
)
def stable_customer_ids(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Give this run's clusters customer_ids, keeping the previous run's ids (identity/source_records.sql)."""
    with settings.build(context.run_id) as con:
        assign_stable_ids(con)
        changes = con.execute("select reason, count(*) from identity.id_changes group by 1").fetchall()
        yield dg.MaterializeResult(
            asset_key=["identity", "source_records"],
            metadata={**table_metadata(con, "identity.source_records"), "id_changes": dg.MetadataValue.json(dict(changes))},
        )
        yield dg.MaterializeResult(asset_key=["identity", "id_history"], metadata=table_metadata(con, "identity.id_history"))


@dg.asset_check(asset=dg.AssetKey(["identity", "source_records"]), blocking=True, description="Every record belongs to exactly one customer.")
def one_customer_per_record(context: dg.AssetCheckExecutionContext, settings: PipelineSettings) -> dg.AssetCheckResult:
    with settings.build(context.run.run_id) as con:
        duplicated, missing = con.execute(
            """
            select
                (select count(*) from (select source, source_record_id from identity.source_records
                                       group by all having count(*) > 1)),
                (select count(*) from identity.match_input
                 anti join identity.source_records using (source, source_record_id))
            """
        ).fetchall()[0]
    return dg.AssetCheckResult(
        passed=duplicated == 0 and missing == 0,
        metadata={"records_in_several_customers": duplicated, "records_without_customer": missing},
    )
