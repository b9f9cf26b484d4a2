"""Stage privacy: the analytics warehouse, the run's tables with personal values pseudonymized.

The asset writes builds/<run_id>.analytics.duckdb; published_warehouse puts it in place
beside the published warehouse, with it (assets/shared/warehouse.py Warehouse.publish).
Its blocking check scans the file, so a file that is not safe stops the publish.

Grouped with exports: like the segment files, it is a file for readers other than the
pipeline, published by the exports' last step, and every job that publishes (the
loyalty_and_marts job too, which selects groups) must rebuild it.
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from assets.core import assets as core
from assets.identity import assets as identity
from assets.ingest import assets as ingest
from assets.loyalty import assets as loyalty
from assets.marts import assets as marts
from assets.privacy.analytics import (
    ANALYTICS_SCHEMAS,
    LEFT_OUT_SCHEMAS,
    PrivacyError,
    build_analytics,
    check_analytics,
)
from assets.privacy.retention import (
    cutoff_date,
    failed_builds,
    purge_dated_folders,
    purge_files,
    purge_raw_rows,
)
from assets.shared.pseudonyms import SaltError, load_salt
from assets.shared.settings import PipelineSettings
from assets.staging import assets as staging

# Every table asset: the analytics file is built after the last of them, whatever gets added.
TABLE_ASSETS = sorted(
    {
        key
        for definition in dg.load_assets_from_modules(
            [ingest, staging, identity, core, loyalty, marts]
        )
        if isinstance(definition, dg.AssetsDefinition)
        for key in definition.keys
    },
    key=lambda key: key.to_user_string(),
)


@dg.asset(
    deps=["retention_purge"] + TABLE_ASSETS,  # after the purge: no hash of a purged quarantine row
    group_name="exports",
    kinds={"duckdb"},
    owners=["team:data-engineering"],
)
def analytics_warehouse(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    """The analytics warehouse (<warehouse>_analytics.duckdb): every staging, identity, core, loyalty,
    marts and quality table, personal columns (catalog pii flags) replaced by salted SHA-256 `<column>_hash`.

    Built beside this run's build; published_warehouse publishes the two together (docs/privacy.md).
    """
    warehouse = settings.warehouse()
    path = warehouse.analytics_build_path(context.run_id)
    try:
        salt = load_salt(settings.warehouse_path)
        with settings.build(context.run_id) as con:
            tables = build_analytics(con, path, salt)
    except (PrivacyError, SaltError) as err:
        raise dg.Failure(description=str(err)) from None
    hashed = {spec.table: spec.hashed for spec in tables if spec.hashed}
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "published_as": dg.MetadataValue.path(str(warehouse.analytics_path)),
            "tables": len(tables),
            "schemas": ", ".join(ANALYTICS_SCHEMAS),
            "columns_copied": sum(len(spec.copied) for spec in tables),
            "columns_hashed": sum(len(columns) for columns in hashed.values()),
            "hashed": dg.MetadataValue.json(hashed),
            # Nothing is dropped column by column (personal columns are hashed); whole schemas are.
            "left_out": dg.MetadataValue.json(
                {f"{schema}.*": why for schema, why in LEFT_OUT_SCHEMAS.items()}
            ),
        }
    )


@dg.asset_check(asset=analytics_warehouse, name="no_personal_value", blocking=True)
def analytics_warehouse_holds_no_personal_value(
    context: dg.AssetCheckExecutionContext, settings: PipelineSettings
) -> dg.AssetCheckResult:
    """No personal column unhashed, every hash a SHA-256, no personal value of the warehouse
    verbatim in any text column, no salt: checked over every row, not a sample."""
    path = settings.warehouse().analytics_build_path(context.run.run_id)
    salt = load_salt(settings.warehouse_path)
    with settings.build(context.run.run_id) as con:
        problems = check_analytics(con, path, salt)
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems[:5]) if problems else None,
        metadata={
            "problems": len(problems),
            "first_problems": dg.MetadataValue.json(problems[:20]),
        },
    )


@dg.asset(
    deps=[dg.AssetKey(table.split(".")) for table in ingest.RAW_TABLES + ingest.MANIFEST_TABLES],
    group_name="ingest",
    kinds={"duckdb", "python"},
    owners=["team:data-engineering"],
)
def retention_purge(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Purge what is older than retention_days (assets/privacy/retention.py, docs/privacy.md):
    raw rows no longer in use and quarantine rows of old deliveries, earlier versions of the
    warehouse, failed builds. Staging reads the same rows before and after."""
    cutoff_on = cutoff_date(settings.as_of_date(), settings.retention_days)
    with settings.build(context.run_id) as con:
        raw = purge_raw_rows(con, cutoff_on, datetime.now(UTC).replace(tzinfo=None))
    files = purge_files(settings.warehouse())
    # Past dates' audiences and identity charts hold personal data too; the reports
    # (<reports>/<date>.html) hold aggregates only and stay.
    folders = purge_dated_folders(Path(settings.exports_dir), cutoff_on) + purge_dated_folders(
        Path(settings.reports_dir) / "identity", cutoff_on
    )
    # Failed builds go at the run's start too (RunSettings.setup_for_execution), by the same rule.
    builds = failed_builds(settings.leftovers_removed_at_start()) + files.failed_builds
    counts = {
        "raw_rows_purged": raw.raw_rows_purged,
        "quarantine_rows_purged": raw.quarantine_rows_purged,
        "field_issues_purged": raw.field_issues_purged,
        "deliveries_touched": raw.deliveries_touched,
        "previous_version_files_removed": len(files.previous_versions),
        "failed_builds_removed": len(builds),
        "dated_folders_removed": len(folders),
    }
    context.log.info(
        f"retention {settings.retention_days} days: purged {counts['raw_rows_purged']} raw rows "
        f"no longer in use and {counts['quarantine_rows_purged']} quarantine rows of deliveries "
        f"delivered before {cutoff_on.isoformat()} ({counts['deliveries_touched']} deliveries), "
        f"{counts['field_issues_purged']} field issues of those rows; removed "
        f"{len(files.previous_versions)} files of earlier versions, {len(builds)} failed builds "
        f"and {len(folders)} export and identity-chart folders of earlier dates"
        + "".join(f"; {path}" for path in files.previous_versions + builds + folders)
    )
    return dg.MaterializeResult(
        metadata={
            "retention_days": settings.retention_days,
            "cutoff_on": dg.MetadataValue.text(cutoff_on.isoformat()),
            **counts,
            **{f"rows_purged_{table}": n for table, n in sorted(raw.rows_purged.items())},
        }
    )


@dg.asset_check(asset=analytics_warehouse, name="erasure_complete", blocking=True)
def erasure_reached_everything(
    context: dg.AssetCheckExecutionContext, settings: PipelineSettings
) -> dg.AssetCheckResult:
    """No identifier of a person erased at their request (privacy.suppressed_identifiers) in any
    table of the build, raw and quality included, nor in the analytics file: a hit stops the publish.
    Runs after the analytics file is built, so after every table of the run."""
    from assets.privacy.erasure_check import erasure_leftovers
    from assets.shared.pseudonyms import set_salt

    path = settings.warehouse().analytics_build_path(context.run.run_id)
    salt = load_salt(settings.warehouse_path)
    with settings.build(context.run.run_id, standardizers=True) as con:
        set_salt(con, salt)
        problems = erasure_leftovers(con, path)
        completed = con.execute(
            "select count(*) from privacy.erasure_log where status = 'completed'"
        ).fetchall()[0][0]
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems[:5])
        if problems
        else f"no identifier of the {completed} completed erasure requests found",
        metadata={
            "problems": len(problems),
            "first_problems": dg.MetadataValue.json(problems[:20]),
            "completed_requests": completed,
        },
    )
