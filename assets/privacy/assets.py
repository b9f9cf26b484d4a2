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
import duckdb

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
    if raw.raw_rows_purged or raw.quarantine_rows_purged:
        # Deleted rows stay in the file's free blocks until the build is rewritten.
        settings.warehouse().request_compaction(context.run_id)
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


def _copies_failure(what: str, err: Exception) -> str:
    """One line without DuckDB's message (it can quote a row): the error's kind, and for a
    file system error its reason and file. The published run stands; the next run retries."""
    detail = type(err).__name__
    if isinstance(err, OSError) and err.strerror:
        detail = f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    return (
        f"{what} for erased people failed ({detail}); the warehouse is published and the "
        "erasure applied in it, and the next run scrubs and searches the copies again"
    )


# Runs after the publish on purpose (tests/test_definitions.py allows it, and only it): the
# version the publish just moved to previous/ is one of the copies it scrubs. It writes no
# table of the build; the run still holds the warehouse's lock (RunSettings), so no other
# run reads or writes these files meanwhile.
@dg.asset(
    deps=["published_warehouse"],
    group_name="exports",
    kinds={"duckdb", "python"},
    owners=["team:data-engineering"],
)
def erased_from_copies(
    context: dg.AssetExecutionContext, settings: PipelineSettings
) -> dg.MaterializeResult:
    """Erased people out of every copy outside the build (assets/privacy/copies.py, docs/privacy.md):
    previous versions rewritten without them, failed builds removed, exports of every date
    scrubbed, record-level Splink charts of past dates removed; and the inbox's request files
    whose requests are all applied removed. Works only while a completed request has not been
    found reached (assets/privacy/after_publish.py); otherwise a no-op."""
    from assets.privacy.after_publish import (
        chart_date_to_keep,
        remove_settled_request_files,
        requests_not_reached,
    )
    from assets.privacy.copies import (
        read_erased_people,
        remove_failed_builds,
        remove_record_level_charts,
        scrub_exports,
        scrub_previous_versions,
    )

    warehouse = settings.warehouse()
    removed_files, changed_files = remove_settled_request_files(
        settings.inbox_dir, warehouse.published_path
    )
    if removed_files:
        context.log.info(
            f"removed {len(removed_files)} request files from the inbox, every request in them "
            f"applied and published (raw.deliveries keeps their hashes): {', '.join(removed_files)}"
        )
    if changed_files:
        context.log.warning(
            "request files whose requests are applied were kept: their bytes are not the ones "
            f"ingested (a new delivery under the same name?): {', '.join(changed_files)}"
        )
    pending = requests_not_reached(warehouse)
    metadata: dict[str, object] = {
        "requests_to_reach": len(pending),
        "request_files_removed": dg.MetadataValue.json(removed_files),
        "request_files_kept_changed": len(changed_files),
    }
    if not pending:
        context.log.info(
            "no completed erasure request left to reach in older copies: nothing to do"
        )
        return dg.MaterializeResult(metadata=metadata)
    try:
        salt = load_salt(settings.warehouse_path)
    except SaltError as err:
        raise dg.Failure(description=str(err)) from None
    try:
        erased = read_erased_people(warehouse.published_path, salt)
        versions = scrub_previous_versions(warehouse, erased)
        builds = remove_failed_builds(warehouse, context.run_id)
        exports = scrub_exports(settings.exports_dir, erased)
        keep = chart_date_to_keep(settings.reports_dir, settings.as_of_date(), erased.erased_since)
        charts = remove_record_level_charts(settings.reports_dir, keep)
    except (duckdb.Error, OSError, ValueError) as err:
        raise dg.Failure(description=_copies_failure("scrubbing the copies", err)) from None
    rewritten = [result for result in versions if result.rewritten]
    metadata |= {
        "previous_version_files_searched": len(versions),
        "previous_version_files_rewritten": len(rewritten),
        "previous_version_rows_deleted": sum(sum(r.deleted.values()) for r in versions),
        "previous_version_rows_rekeyed": sum(sum(r.rekeyed.values()) for r in versions),
        "failed_build_files_removed": len(builds),
        "export_files_rewritten": len(exports.rewritten),
        "export_rows_deleted": sum(exports.rewritten.values()),
        "export_files_removed": dg.MetadataValue.json(sorted(exports.removed)),
        "record_level_charts_removed": len(charts),
    }
    # Names hold stamps, run ids, dates and segments only.
    context.log.info(
        f"{len(pending)} completed erasure requests reached in older copies: "
        f"{len(rewritten)} of {len(versions)} previous version files rewritten "
        f"({metadata['previous_version_rows_deleted']} rows deleted, "
        f"{metadata['previous_version_rows_rekeyed']} kept under pseudonymous ids), "
        f"{len(builds)} failed build files removed, {len(exports.rewritten)} export files rewritten "
        f"({metadata['export_rows_deleted']} rows), {len(exports.removed)} removed whole "
        f"(hashed-only ad-platform files: re-export them), {len(charts)} record-level charts removed"
    )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=erased_from_copies, name="erased_everywhere", blocking=True)
def erased_people_found_nowhere(
    context: dg.AssetCheckExecutionContext, settings: PipelineSettings
) -> dg.AssetCheckResult:
    """Every file the project keeps searched for rows of a completed request's person: the
    published main and analytics files, previous/, builds/, exports of every date, record-level
    Splink charts, and the inbox for request files already applied. Counts per place, never a
    value. Clean: the requests are recorded as reached, and later runs skip the search."""
    from assets.privacy.after_publish import (
        applied_request_files,
        chart_date_to_keep,
        record_reached,
        requests_not_reached,
    )
    from assets.privacy.copies import find_erased_values_everywhere, read_erased_people

    warehouse = settings.warehouse()
    inbox = Path(settings.inbox_dir)
    left_in_inbox, _ = applied_request_files(inbox, warehouse.published_path)
    pending = requests_not_reached(warehouse)
    if not pending:
        return dg.AssetCheckResult(
            passed=not left_in_inbox,
            description=(
                f"{len(left_in_inbox)} applied request files still in the inbox"
                if left_in_inbox
                else "no completed erasure request left to reach"
            ),
            metadata={"files_searched": 0, "request_files_in_inbox": len(left_in_inbox)},
        )
    try:
        erased = read_erased_people(warehouse.published_path, load_salt(settings.warehouse_path))
        keep = chart_date_to_keep(settings.reports_dir, settings.as_of_date(), erased.erased_since)
        found = find_erased_values_everywhere(
            warehouse, settings.exports_dir, erased, settings.reports_dir, keep_as_of=keep
        )
    except (duckdb.Error, OSError, ValueError, SaltError) as err:
        raise dg.Failure(description=_copies_failure("searching the copies", err)) from None
    places = dict(found.found)
    places |= {f"{path}: open for writing, not searched": 1 for path in found.unreadable}
    places |= {f"{inbox / name}: applied request file": 1 for name in left_in_inbox}
    passed = not places
    if passed:
        record_reached(warehouse, pending)
    return dg.AssetCheckResult(
        passed=passed,
        description=(
            f"{len(places)} places still hold an erased person: " + "; ".join(sorted(places)[:5])
            if places
            else f"{len(pending)} completed requests: no erased person in {found.files_searched} files"
        ),
        metadata={
            "files_searched": found.files_searched,
            "requests_reached": len(pending) if passed else 0,
            "places_found": len(places),
            # place -> rows: file and table names only
            "found": dg.MetadataValue.json(dict(sorted(places.items())[:50])),
        },
    )
