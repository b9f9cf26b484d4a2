"""Stage exports: marketing files, then publishing the warehouse for readers."""

from pathlib import Path

import dagster as dg

from assets.program import ProgramError
from assets.report import write_report
from assets.segment_files import write_segment_exports
from pipelines.settings import PipelineSettings


@dg.asset(
    deps=[["marts", "segment_memberships"], ["marts", "segments"], ["core", "customers"], ["loyalty", "balances"]],
    group_name="exports",
    kinds={"csv", "parquet"},
    owners=["team:marketing"],
)
def segment_exports(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    """A CSV and a Parquet file per RFM, lifecycle and custom segment under <exports>/<as-of>/, with a manifest.

    Each holds only the customers whose latest statement for the segment's channel is consent.
    """
    try:
        program = settings.program()
    except ProgramError as err:
        raise dg.Failure(description=str(err)) from None
    with settings.build(context.run_id) as con:
        files = write_segment_exports(con, program, Path(settings.exports_dir), settings.as_of_date(),
                                      hashes=settings.export_hashes)
    folder = Path(settings.exports_dir) / settings.as_of_date().isoformat()
    return dg.MaterializeResult(
        metadata={
            "folder": dg.MetadataValue.path(str(folder)),
            "segments": len(files),
            "rows": sum(f["rows"] for f in files),
        }
    )


@dg.asset(
    deps=[["marts", "kpis"], ["marts", "segments"], ["quality", "source_summary"], ["loyalty", "program_tiers"]],
    group_name="exports",
    kinds={"html"},
    owners=["team:analytics"],
)
def run_report(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    """The run's HTML report: KPIs, tier funnel, segments, RFM grid, activity, identity and data quality."""
    with settings.build(context.run_id) as con:
        path = write_report(con, Path(settings.reports_dir), settings.as_of_date())
    return dg.MaterializeResult(metadata={"report": dg.MetadataValue.path(str(path)),
                                          "latest": dg.MetadataValue.path(str(path.with_name("latest.html")))})


@dg.asset(
    # Every other asset must be upstream: a step that ran after the swap would write to a
    # copy that is never published (tests/test_definitions.py checks this).
    deps=[segment_exports, run_report, ["marts", "kpis"], ["quality", "source_summary"], ["identity", "id_history"]],
    group_name="exports",
    kinds={"duckdb"},
    owners=["team:data-engineering"],
)
def published_warehouse(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    """Swap this run's build in as the published warehouse, atomically; earlier versions are kept."""
    warehouse = settings.warehouse()
    path = warehouse.publish(context.run_id)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "previous_versions": len(warehouse.previous_versions()),
        }
    )
