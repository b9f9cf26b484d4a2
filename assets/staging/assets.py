"""Stage staging: one cleaned, standardized table per source file kind, with its quality gate."""

import dagster as dg

from assets.ingest.contract import source_files
from assets.shared.settings import PipelineSettings
from assets.shared.sql_assets import sql_asset
from assets.staging.validation import validate_table

staging_assets = [
    sql_asset(
        f"staging/{spec.table}",
        group="staging",
        description=f"{spec.description} Latest delivery of each key, standardized.",
        standardizers=True,
    )
    for spec in source_files()
]


def expectations_check(table: str) -> dg.AssetChecksDefinition:
    """The table's Great Expectations suite as an asset check: critical failures block publishing."""

    @dg.asset_check(
        asset=dg.AssetKey(["staging", table]),
        name=f"expectations_{table}",
        blocking=True,
        description=f"expectations/staging.{table}.json: structure and keys block; distributions warn.",
    )
    def _check(
        context: dg.AssetCheckExecutionContext, settings: PipelineSettings
    ) -> dg.AssetCheckResult:
        with settings.build(context.run.run_id) as con:
            outcome = validate_table(con, f"staging.{table}")
        failed = [o for o in outcome.outcomes if not o.success]
        return dg.AssetCheckResult(
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR
            if outcome.blocking_failures
            else dg.AssetCheckSeverity.WARN,
            metadata={
                "rows": outcome.rows,
                "expectations": len(outcome.outcomes),
                "failed": dg.MetadataValue.md(
                    "\n".join(
                        f"- **{o.severity}** `{o.expectation}` on `{o.column}`: {o.unexpected_count} rows "
                        f"({o.unexpected_percent:.1f}%), e.g. {', '.join(o.examples) or '-'}"
                        for o in failed
                    )
                    or "none"
                ),
            },
        )

    return _check


staging_checks = [expectations_check(spec.table) for spec in source_files()]
