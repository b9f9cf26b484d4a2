"""Stage ingest: new inbox deliveries into the raw layer, bad rows into quarantine."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from assets.ingest.contract import source_files
from assets.ingest.deliveries import DeliveryError, Limits, ingest_inbox, shown
from assets.privacy.erasure import ErasureError, apply_erasure_requests
from assets.shared.catalog import documented
from assets.shared.pseudonyms import SaltError, load_salt, set_salt
from assets.shared.settings import PipelineSettings
from assets.shared.sql_assets import sql_asset, table_metadata, table_spec

RAW_TABLES = [f"raw.{spec.table}" for spec in source_files()]
MANIFEST_TABLES = [
    "raw.deliveries",
    "raw.duplicate_deliveries",
    "quality.quarantine",
    "quality.field_issues",
]
# Requests to be forgotten are applied at the end of ingestion (assets/privacy/erasure.py).
PRIVACY_TABLES = [
    "privacy.suppressed_identifiers",
    "privacy.erased_records",
    "privacy.erased_customers",
    "privacy.erasure_log",
]


def _key(table: str) -> dg.AssetKey:
    return dg.AssetKey(table.split("."))


@dg.multi_asset(
    # Each table's description from the catalog (schemas/warehouse/*.yaml, the export contract
    # for raw tables), written there once.
    specs=[
        table_spec(
            kinds=("duckdb", "python"), key=_key(table), description=documented()[table].description
        )
        for table in RAW_TABLES + MANIFEST_TABLES + PRIVACY_TABLES
    ],
    group_name="ingest",
    can_subset=False,
)
def raw_deliveries(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Ingest every delivery of the inbox not seen before (by content), dropping rows of
    people who asked to be forgotten, then apply this run's requests to be forgotten."""
    # Standardizers and the salt: the suppression list and erasure compare standardized,
    # salted identifiers (assets/ingest/suppression.py, assets/privacy/erasure.py).
    with settings.build(context.run_id, standardizers=True) as con:
        try:
            set_salt(con, load_salt(settings.warehouse_path))
            limits = Limits(max_file_mb=settings.max_file_mb, max_line_kb=settings.max_line_kb)
            result = ingest_inbox(con, Path(settings.inbox_dir), settings.max_bad_row_share, limits)
            erasure = apply_erasure_requests(con, datetime.now(UTC).replace(tzinfo=None))
        except (DeliveryError, ErasureError, SaltError) as err:
            # The message names the file (escaped) and the problem, never a row's text;
            # nothing of this run is published.
            raise dg.Failure(description=str(err)) from None
        if erasure.completed:
            # Deleted rows (and the request's own e-mail, emptied) stay in the file's free
            # blocks: the build is rewritten before it is published (Warehouse.compact_build).
            settings.warehouse().request_compaction(context.run_id)
        if erasure.requests:
            context.log.info(
                f"requests to be forgotten: {erasure.completed} applied, {erasure.needs_review} need review "
                f"(privacy.erasure_log); {erasure.records_erased} customer records erased, "
                f"{erasure.rows_touched} rows in {erasure.tables_touched} tables; older copies and the "
                "inbox's request files follow once this run is published (step erased_from_copies)"
            )
        context.log.info(
            f"ingested {len(result.deliveries)} new deliveries: {result.rows_read} rows read, "
            f"{result.rows_loaded} loaded, {result.rows_quarantined} quarantined, "
            f"{result.rows_suppressed} suppressed (erased people's); "
            f"{result.field_issues} optional fields emptied (quality.field_issues)"
        )
        # Names are the senders' choice: escaped, so one cannot forge a log line.
        ignored = ", ".join(shown(name) for name in result.ignored_files)
        if ignored:
            context.log.warning(f"files matching no contract pattern were not read: {ignored}")
        for table in RAW_TABLES + MANIFEST_TABLES + PRIVACY_TABLES:
            metadata = table_metadata(con, table)
            if table == "raw.deliveries":
                metadata["new_deliveries"] = len(result.deliveries)
                metadata["rows_read_this_run"] = result.rows_read
                metadata["ignored_files"] = dg.MetadataValue.text(ignored or "none")
            yield dg.MaterializeResult(asset_key=_key(table), metadata=metadata)


@dg.asset_check(
    asset=_key("raw.deliveries"),
    blocking=True,
    description="Rows read = rows loaded + rows quarantined + rows suppressed (erased people's), per "
    "delivery; the rows held are those, less the rows erasure and retention removed since.",
)
def nothing_lost_in_ingestion(
    context: dg.AssetCheckExecutionContext, settings: PipelineSettings
) -> dg.AssetCheckResult:
    with settings.build(context.run.run_id) as con:
        loaded = " union all ".join(
            f"select _delivery_id as delivery_id, count(*) as n from {table} group by 1"
            for table in RAW_TABLES
        )
        mismatched = con.execute(
            f"""
            with loaded as ({loaded}),
            quarantined as (select delivery_id, count(*) as n from quality.quarantine group by 1)
            select deliveries.file
            from raw.deliveries as deliveries
            left join loaded using (delivery_id)
            left join quarantined using (delivery_id)
            where deliveries.rows_read
                    <> deliveries.rows_loaded + deliveries.rows_quarantined + coalesce(deliveries.rows_suppressed, 0)
                -- Rows removed after loading: by an erasure (raw or quarantine, rows_erased)
                -- or by retention (rows_purged from raw, quarantine_rows_purged).
                or deliveries.rows_loaded + deliveries.rows_quarantined
                    <> coalesce(loaded.n, 0) + coalesce(quarantined.n, 0)
                        + coalesce(deliveries.rows_erased, 0)
                        + deliveries.rows_purged + deliveries.quarantine_rows_purged
            """
        ).fetchall()
    files = [shown(f) for (f,) in mismatched]
    return dg.AssetCheckResult(
        passed=not mismatched,
        description=f"not reconciled: {', '.join(files)}"
        if files
        else "every delivery's rows are loaded, quarantined or suppressed",
        metadata={"deliveries_not_reconciled": len(files)},
    )


# A source reading fewer of its phones than this, or reading most of them only as possible
# (not valid) numbers, reads them in the wrong region or delivers a format the standardizer
# does not know: worth a look, not worth stopping a run.
PHONE_READ_FLOOR = 0.90


def phone_read_shares(con) -> dict[str, tuple[float, float | None]]:
    """Per source, over its deliveries: (share of the phones given that became a phone_e164,
    share of those that are valid numbers). A US number read as British is a possible UK
    number, so a wrong region shows in the second share."""
    rows = con.execute(
        "select source, sum(phones_read) / sum(phones_present), sum(phones_valid) / nullif(sum(phones_read), 0) "
        "from quality.source_summary where phones_present > 0 group by source order by source"
    ).fetchall()
    return {
        source: (float(read), None if valid is None else float(valid))
        for source, read, valid in rows
    }


@dg.asset_check(
    asset=_key("quality.source_summary"),
    blocking=False,
    description=f"Warns when a source reads fewer than {PHONE_READ_FLOOR:.0%} of its phones as numbers (valid or possible), "
    f"or fewer than {PHONE_READ_FLOOR:.0%} of those it reads are valid, over its deliveries: a wrong phone region, "
    "or a phone format the standardizer does not know.",
)
def phone_read_rate(
    context: dg.AssetCheckExecutionContext, settings: PipelineSettings
) -> dg.AssetCheckResult:
    with settings.build(context.run.run_id, standardizers=True) as con:
        shares = phone_read_shares(con)
        region, inferred_from = con.execute(
            "select getvariable('phone_region'), getvariable('phone_region_inferred_from')"
        ).fetchall()[0]
    low = {
        source: f"{source} ({read:.1%} read, {valid or 0:.1%} of them valid)"
        for source, (read, valid) in shares.items()
        if read < PHONE_READ_FLOOR or (valid or 0) < PHONE_READ_FLOOR
    }
    metadata = {"sources_below_floor": dg.MetadataValue.text(", ".join(low.values()) or "none")}
    for source, (read, valid) in shares.items():
        metadata[f"phone_read_rate_{source}"] = dg.MetadataValue.float(round(read, 4))
        metadata[f"phone_valid_share_{source}"] = dg.MetadataValue.float(
            round(float(valid or 0), 4)
        )
    metadata["phone_region"] = dg.MetadataValue.text(region)
    metadata["phone_region_inferred_from"] = dg.MetadataValue.text(inferred_from)
    return dg.AssetCheckResult(
        passed=not low,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"below {PHONE_READ_FLOOR:.0%}: {', '.join(low.values())}"
        if low
        else f"every source reads at least {PHONE_READ_FLOOR:.0%} of its phones, at least {PHONE_READ_FLOOR:.0%} of them valid",
        metadata=metadata,
    )


source_summary = sql_asset(
    "quality/source_summary",
    group="ingest",
    description="Per delivery: rows read, loaded and quarantined, and presence and validity of identifying fields.",
    standardizers=True,
)
