"""Stage exports: marketing files, then publishing the warehouse and those files for readers."""

from pathlib import Path

import dagster as dg

from assets.exports.report import write_report
from assets.exports.segment_files import (
    mark_publishing,
    publish_segment_exports,
    staging_dir,
    write_segment_exports,
)
from assets.loyalty.program import ProgramError
from assets.shared.settings import PipelineSettings
from assets.shared.warehouse import WarehouseError, file_identity

# Every job ends with published_warehouse, so a pool on it names the runs on the warehouse.
# With the instance's pools at run granularity and a limit of 1 (dagster.yaml:
# `concurrency: pools: {granularity: run, default_limit: 1}`), the run queue starts one such
# run at a time and keeps the next queued. Without that setting runs still never overlap:
# each holds the warehouse's lock (assets/shared/run_lock.py), and a second one fails at its start.
WAREHOUSE_POOL = "omniloyal_warehouse"


# Also reads the program file (which segments are exported, on which channel), which is no asset.
@dg.asset(
    deps=[
        ["marts", "segment_memberships"],
        ["marts", "segments"],
        ["core", "customers"],
        ["loyalty", "balances"],
        ["loyalty", "campaign_assignments"],
    ],
    group_name="exports",
    kinds={"csv", "parquet"},
    owners=["team:marketing"],
)
def segment_exports(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    """A CSV and a Parquet file per RFM, lifecycle and custom segment for <exports>/<as-of>/, with a manifest.

    Each holds only the customers whose latest statement for the segment's channel is consent.
    Written to this run's staging folder; published_warehouse moves them into place.
    """
    try:
        program = settings.program()
    except ProgramError as err:
        raise dg.Failure(description=str(err)) from None
    staging = staging_dir(settings.exports_dir, context.run_id)
    try:
        with settings.build(context.run_id) as con:
            files = write_segment_exports(
                con, program, staging, settings.as_of_date(), hashes=settings.export_hashes
            )
    except ValueError as err:  # two segments that would share a file
        raise dg.Failure(description=str(err)) from None
    folder = staging / settings.as_of_date().isoformat()
    return dg.MaterializeResult(
        metadata={
            "folder": dg.MetadataValue.path(str(folder)),
            "segments": len(files),
            "rows": sum(f["rows"] for f in files),
        }
    )


# Every table the report reads (assets/exports/report.py).
@dg.asset(
    deps=[
        ["marts", "kpis"],
        ["marts", "kpi_history"],
        ["marts", "campaign_results"],
        ["marts", "segments"],
        ["marts", "segment_memberships"],
        ["core", "customers"],
        ["identity", "source_records"],
        ["loyalty", "balances"],
        ["loyalty", "program_settings"],
        ["loyalty", "program_tiers"],
        ["loyalty", "program_rfm_segments"],
        ["quality", "source_summary"],
        ["quality", "quarantine"],
        ["quality", "field_issues"],
    ],
    group_name="exports",
    kinds={"html"},
    owners=["team:analytics"],
)
def run_report(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    """The run's HTML report: key figures with their change, members and segments, reachable audiences,
    campaigns against their holdouts, monthly activity, points liability and breakage, identity resolution and data quality."""
    with settings.build(context.run_id) as con:
        path = write_report(con, Path(settings.reports_dir), settings.as_of_date())
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.path(str(path)),
            "latest": dg.MetadataValue.path(str(path.with_name("latest.html"))),
        }
    )


@dg.asset(
    # Every other asset must be upstream: a step that ran after the swap would write to a
    # copy that is never published (tests/test_definitions.py checks this).
    deps=[
        segment_exports,
        run_report,
        ["marts", "kpis"],
        ["quality", "source_summary"],
        ["identity", "id_history"],
        ["analytics_warehouse"],  # published with the warehouse (assets/privacy/)
    ],
    group_name="exports",
    kinds={"duckdb"},
    owners=["team:data-engineering"],
    pool=WAREHOUSE_POOL,
)
def published_warehouse(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    """Swap this run's build in as the published warehouse, atomically, then its segment exports; earlier
    warehouse versions are kept.

    Refused, with nothing replaced, when the published file changed since the run copied it
    or another process is writing it.
    """
    warehouse = settings.warehouse()
    build = warehouse.build_path(context.run_id)
    if build.exists() and warehouse.compact_build(context.run_id):
        context.log.info("rewrote the build as a fresh file: this run deleted personal data")
    if build.exists():
        mark_publishing(settings.exports_dir, context.run_id, file_identity(build.stat()))
    try:
        path = warehouse.publish(context.run_id)
    except WarehouseError as err:
        raise dg.Failure(description=str(err)) from None
    # After the warehouse: a kill between the two leaves the new warehouse beside the previous
    # complete set of exports, never the new exports beside the old warehouse, and the next
    # run's start puts these exports in place (finish_interrupted_publish, marked above).
    try:
        folders = publish_segment_exports(settings.exports_dir, context.run_id)
    except OSError as err:
        # Told apart from a refused publish: `omniloyal run` then reports a published run.
        raise dg.Failure(
            description=f"the warehouse was published, but its segment exports could not be put in place "
            f"({err}): run again to export them",
            metadata={"warehouse_published": True},
        ) from None
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "previous_versions": len(warehouse.previous_versions()),
            "exports": dg.MetadataValue.json([str(folder) for folder in folders]),
        }
    )
