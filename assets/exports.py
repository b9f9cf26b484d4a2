"""Stage exports: marketing files, then publishing the warehouse for readers."""

from pathlib import Path

import dagster as dg

from assets.segment_files import write_segment_exports
from pipelines.settings import PipelineSettings


@dg.asset(
    deps=[["marts", "segments"], ["core", "customers"], ["loyalty", "balances"]],
    group_name="exports",
    kinds={"csv"},
    owners=["team:marketing"],
)
def segment_exports(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    """One CSV per RFM segment under <exports>/<as-of>/: consented e-mail audiences, with a manifest."""
    with settings.build(context.run_id) as con:
        files = write_segment_exports(con, Path(settings.exports_dir), settings.as_of_date())
    folder = Path(settings.exports_dir) / settings.as_of_date().isoformat()
    return dg.MaterializeResult(
        metadata={
            "folder": dg.MetadataValue.path(str(folder)),
            "files": len(files),
            "rows": sum(f["rows"] for f in files),
        }
    )


@dg.asset(
    # Every other asset must be upstream: a step that ran after the swap would write to a
    # copy that is never published (tests/test_definitions.py checks this).
    deps=[segment_exports, ["marts", "kpis"], ["quality", "source_summary"]],
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
