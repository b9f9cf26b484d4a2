"""Stage staging: one cleaned, standardized table per source file kind, with its quality gate."""

import dagster as dg

from assets.ingest.contract import source_files
from assets.shared.memory import release_freed_memory
from assets.shared.settings import PipelineSettings
from assets.shared.sql_assets import sql_asset
from assets.staging.validation import ExpectationOutcome, validate_table

staging_assets = [
    sql_asset(
        f"staging/{spec.table}",
        group="staging",
        description=f"{spec.description} Latest delivery of each key, standardized.",
        standardizers=True,
    )
    for spec in source_files()
]


FAILED_EXPECTATION_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn(
            "severity", "string", description="critical blocks publishing; warning is reported"
        ),
        dg.TableColumn("expectation", "string"),
        dg.TableColumn("column", "string"),
        dg.TableColumn("failing_rows", "int"),
        dg.TableColumn("failing_percent", "float"),
        dg.TableColumn(
            "examples", "string", description="failing values, masked in personal columns"
        ),
    ]
)


def failed_expectations_table(failed: list[ExpectationOutcome]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "severity": o.severity,
                    "expectation": o.expectation,
                    "column": o.column or "(table)",
                    "failing_rows": o.unexpected_count,
                    "failing_percent": round(o.unexpected_percent, 2),
                    "examples": ", ".join(o.examples) or "-",
                }
            )
            for o in failed
        ],
        schema=FAILED_EXPECTATION_COLUMNS,
    )


def suite_summary(expectations: int, failed: list[ExpectationOutcome]) -> str:
    """The line the UI shows beside the check's status."""
    if not failed:
        return f"all {expectations} expectations met"
    critical = sum(o.severity == "critical" for o in failed)
    return (
        f"{len(failed)} of {expectations} expectations failed ({critical} critical, "
        f"{len(failed) - critical} warning): see failed_expectations"
    )


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
        # The suite's pandas frame is gone, but not the memory it took (assets/shared/memory.py).
        release_freed_memory()
        failed = [o for o in outcome.outcomes if not o.success]
        metadata = {"rows": outcome.rows}
        if failed:
            # A table the UI shows as it is; examples of personal columns come back masked.
            metadata["failed_expectations"] = failed_expectations_table(failed)
        return dg.AssetCheckResult(
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR
            if outcome.blocking_failures
            else dg.AssetCheckSeverity.WARN,
            description=suite_summary(len(outcome.outcomes), failed),
            metadata=metadata,
        )

    return _check


staging_checks = [expectations_check(spec.table) for spec in source_files()]
