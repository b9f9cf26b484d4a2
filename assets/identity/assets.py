"""Stage identity: which customer records are one person, and their customer_id."""

import json
from pathlib import Path

import dagster as dg

from assets.identity.charts import file_uri
from assets.identity.engines import EngineError
from assets.identity.frozen_model import load_frozen
from assets.identity.incremental import match_delta, plan, save_state
from assets.identity.matching import match_records
from assets.identity.stable_ids import assign_stable_ids
from assets.identity.steward_decisions import StewardDecisionsError, applied_pairs, load_decisions
from assets.shared.lineage import step_reads
from assets.shared.memory import release_freed_memory
from assets.shared.settings import PipelineSettings
from assets.shared.sql_assets import sql_asset, table_metadata, table_spec

record_keys = sql_asset(
    "identity/record_keys",
    group="identity",
    description="Every customer record of every source with its matching keys, before merge protection.",
    standardizers=True,
)

# Also reads the blocked-identifiers file (read_csv in its SQL), which is no asset.
blocked_identifiers = sql_asset(
    "identity/blocked_identifiers",
    group="identity",
    description="Phones and e-mails never used as matching evidence: listed placeholders and values shared by too many people.",
)

match_input = sql_asset(
    "identity/match_input",
    group="identity",
    description="Every customer record of every source with its matching keys, blocked identifier values removed.",
)


@dg.asset(
    key=["identity", "steward_decisions"],
    # Also reads the stewards' file (settings.identity_overrides), which is no asset: a changed
    # file shows in no graph, so rebuild from here after editing it.
    deps=[dg.AssetKey(["identity", "match_input"])],
    group_name="identity",
    description="Stewards' decisions (same person, different people) from the identity_overrides file, with their status.",
    kinds={"duckdb", "python"},
    owners=["team:data-engineering"],
)
def steward_decisions(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    """Load and check the stewards' decisions file (settings.identity_overrides; empty: none)."""
    with settings.build(context.run_id) as con:
        try:
            counts = load_decisions(con, settings.identity_overrides or None)
        except StewardDecisionsError as err:
            raise dg.Failure(description=str(err)) from None
        if counts["unknown"] or counts["invalid"]:
            context.log.warning(
                f"steward decisions: {counts['unknown']} name an unknown record, {counts['invalid']} are invalid "
                "(see identity.steward_decisions.status)"
            )
        return dg.MaterializeResult(
            metadata={
                **table_metadata(con, "identity.steward_decisions"),
                "decisions_applied": counts["applied"],
                "decisions_unknown_record": counts["unknown"],
                "decisions_invalid": counts["invalid"],
            }
        )


@dg.multi_asset(
    specs=[
        table_spec(
            kinds=("duckdb", "splink"),
            key=["identity", "clusters"],
            deps=[["identity", "match_input"], ["identity", "steward_decisions"]],
            description="The cluster of every customer record (a record that matches nothing is a cluster of its own).",
        ),
        table_spec(
            kinds=("duckdb", "splink"),
            key=["identity", "match_evidence"],
            deps=[["identity", "match_input"], ["identity", "steward_decisions"]],
            description="Record pairs linked by the model or a steward, with their match probability and weights.",
        ),
    ],
    group_name="identity",
)
def splink_matches(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Score candidate pairs with the Splink model, link them, guard against conflicts, cluster.

    The model is trained on this run's records unless settings.identity_model names a
    saved one. The applied stewards' decisions (identity.steward_decisions) override the
    model. The model and Splink's charts go to <reports>/identity/<as-of>/.

    A run with few new, changed or removed records scores only those, with the model the
    warehouse saved (identity.saved_model), and clusters again only what they touch
    (assets/identity/incremental.py; settings.identity_refresh).
    """
    folder = Path(settings.reports_dir) / "identity" / settings.as_of_date().isoformat()
    model = Path(settings.identity_model) if settings.identity_model else None
    if model is not None and not model.is_file():
        raise dg.Failure(description=f"identity_model {model}: no such model file")
    with settings.build(context.run_id) as con:
        records = con.sql("select * from identity.match_input").to_arrow_table()
        must_link, cannot_link = applied_pairs(con)
        saved = load_frozen(con)
        path = plan(
            con, settings.identity_refresh, settings.incremental_max_share, saved, model is not None
        )
        if path.path == "incremental":
            previous_evidence = con.sql("select * from identity.match_evidence").to_arrow_table()
            previous_clusters = con.sql("select * from identity.clusters").to_arrow_table()
    context.log.info(f"identity: {path.path} ({path.reason})")
    # The build stays closed while pairs are scored: Splink's own DuckDB (or Spark) and the
    # build's would otherwise each hold up to duckdb_memory_limit at the same time.
    # Splink's scratch database holds the records: beside the build, not in the system's
    # temporary folder, so personal data stays in the warehouse's folder (and a killed
    # run's scratch is removed by the next run: Warehouse.clean_leftovers).
    spill_dir = (
        Path(settings.duckdb_temp_dir)
        if settings.duckdb_temp_dir
        else settings.warehouse().builds_dir
    )
    delta = None
    try:
        if path.path == "incremental":
            result, delta = match_delta(
                records,
                path.changed_ids,
                path.seeds,
                previous_evidence,
                previous_clusters,
                path.saved.frozen,
                must_link=must_link,
                cannot_link=cannot_link,
                memory_limit=settings.duckdb_memory_limit,
                spill_dir=spill_dir,
            )
            del previous_evidence, previous_clusters
        else:
            result = match_records(
                records,
                model=model,
                charts_dir=folder,
                must_link=must_link,
                cannot_link=cannot_link,
                memory_limit=settings.duckdb_memory_limit,
                spill_dir=spill_dir,
                frozen=path.saved.frozen if path.path == "rescore" else None,
                # A saved model's rescoring and incremental runs score on DuckDB.
                engine=settings.identity_engine if path.path == "full" else "duckdb",
                spark_master=settings.spark_master,
            )
    except EngineError as err:  # identity_engine spark cannot run (or read the model) as asked
        raise dg.Failure(description=str(err)) from None
    del records
    release_freed_memory()  # the records and Splink's working memory (assets/shared/memory.py)
    with settings.build(context.run_id) as con:
        run_summary = save_state(con, result, path, delta, settings.as_of_date(), saved)
        for table, data in (("clusters", result.clusters), ("match_evidence", result.evidence)):
            con.register("splink_output", data)
            con.execute(f"create or replace table identity.{table} as select * from splink_output")
            con.unregister("splink_output")
        for warning in result.training.warnings:
            context.log.warning(f"identity: {warning}")
        if result.training.skipped:
            context.log.info(f"identity: training skipped {result.training.skipped}")
        for part, measured in result.guard.evidence.items():
            if not measured["enforced"]:
                context.log.info(
                    f"identity: conflict guard does not enforce differing {part.replace('_', ' ')}: "
                    f"{measured['contradicted_pairs']} of {measured['evident_pairs']} records evidently of one person differ so"
                )
        model_path = folder / "splink_model.json"
        if result.model_json is not None:
            model_path.parent.mkdir(parents=True, exist_ok=True)
            model_path.write_text(
                json.dumps(result.model_json, indent=2, sort_keys=True), encoding="utf-8"
            )
        cut = dict(
            con.execute(
                "select cut_by, count(*) from identity.match_evidence where not is_linked group by 1"
            ).fetchall()
        )
        yield dg.MaterializeResult(
            asset_key=["identity", "clusters"],
            metadata={
                **table_metadata(con, "identity.clusters"),
                "model": dg.MetadataValue.url(file_uri(model_path))
                if result.model_json is not None
                else "none",
                "training": dg.MetadataValue.json(result.training.as_metadata()),
                "conflict_guard": dg.MetadataValue.json(result.guard.as_metadata()),
                "model_reused": model is not None or path.path != "full",
                "identity_path": dg.MetadataValue.json(run_summary),
                "engine": settings.identity_engine if path.path == "full" else "duckdb",
                **{
                    f"chart_{name}": dg.MetadataValue.url(file_uri(path))
                    for name, path in result.charts.items()
                },
            },
        )
        yield dg.MaterializeResult(
            asset_key=["identity", "match_evidence"],
            metadata={
                **table_metadata(con, "identity.match_evidence"),
                "pairs_linked": result.pairs_linked,
                "pairs_kept_apart_by_conflict_guard": cut.get("conflict guard", 0),
                "pairs_kept_apart_by_steward": cut.get("steward", 0),
                "steward_same_person_pairs": must_link.num_rows,
                "steward_different_people_pairs": cannot_link.num_rows,
            },
        )


# stable_customer_ids runs identity/source_records.sql then identity/id_changes.sql
# (assets/identity/stable_ids.py); its deps are what they read, less the tables the step
# makes itself: the previous run's ids, copied from identity.source_records before it is rebuilt.
STABLE_ID_SCRATCH = ["identity.previous_source_records"]


@dg.multi_asset(
    specs=[
        table_spec(
            kinds=("duckdb", "sql"),
            key=["identity", "source_records"],
            deps=[t.split(".") for t in step_reads(["identity/source_records"], STABLE_ID_SCRATCH)],
            description="One row per customer record of every source, with its stable customer_id.",
        ),
        table_spec(
            kinds=("duckdb", "sql"),
            key=["identity", "id_history"],
            deps=[
                t.split(".")
                for t in step_reads(
                    ["identity/source_records", "identity/id_changes"], STABLE_ID_SCRATCH
                )
            ],
            description="Every customer_id change of every run: merges, splits and stewards' changes, when and how many records.",
        ),
    ],
    group_name="identity",
    can_subset=False,
)
def stable_customer_ids(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Give this run's clusters customer_ids, keeping the previous run's ids (identity/source_records.sql)."""
    with settings.build(context.run_id) as con:
        assign_stable_ids(con)
        changes = con.execute(
            "select reason, count(*) from identity.id_changes group by 1"
        ).fetchall()
        yield dg.MaterializeResult(
            asset_key=["identity", "source_records"],
            metadata={
                **table_metadata(con, "identity.source_records"),
                "id_changes": dg.MetadataValue.json(dict(changes)),
            },
        )
        yield dg.MaterializeResult(
            asset_key=["identity", "id_history"],
            metadata=table_metadata(con, "identity.id_history"),
        )


@dg.asset_check(
    asset=dg.AssetKey(["identity", "source_records"]),
    blocking=True,
    description="Every record belongs to exactly one customer.",
)
def one_customer_per_record(
    context: dg.AssetCheckExecutionContext, settings: PipelineSettings
) -> dg.AssetCheckResult:
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
