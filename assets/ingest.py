"""Stage ingest: new inbox deliveries into the raw layer, bad rows into quarantine."""

from pathlib import Path

import dagster as dg

from assets.contract import source_files
from assets.deliveries import DeliveryError, ingest_inbox
from assets.sql_assets import sql_asset, table_metadata, table_spec
from pipelines.settings import PipelineSettings

RAW_TABLES = [f"raw.{spec.table}" for spec in source_files()]
MANIFEST_TABLES = ["raw.deliveries", "raw.duplicate_deliveries", "quality.quarantine"]


def _key(table: str) -> dg.AssetKey:
    return dg.AssetKey(table.split("."))


@dg.multi_asset(
    specs=[
        table_spec(kinds=("duckdb", "python"), key=_key(table), description=f"Loaded rows of every delivery, as typed by the contract ({table}).")
        for table in RAW_TABLES
    ]
    + [
        table_spec(kinds=("duckdb", "python"), key=_key("raw.deliveries"), description="Manifest: one row per ingested file, with its checksum and row counts."),
        table_spec(kinds=("duckdb", "python"), key=_key("raw.duplicate_deliveries"), description="Files whose bytes were already ingested under another name."),
        table_spec(kinds=("duckdb", "python"), key=_key("quality.quarantine"), description="Rows that break the contract, with file, line, reason and raw text."),
    ],
    group_name="ingest",
    can_subset=False,
)
def raw_deliveries(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Ingest every delivery of the inbox not seen before (by content)."""
    with settings.build(context.run_id) as con:
        try:
            result = ingest_inbox(con, Path(settings.inbox_dir), settings.max_bad_row_share)
        except DeliveryError as err:
            # The message names the file and the problem; nothing of this run is published.
            raise dg.Failure(description=str(err)) from None
        context.log.info(
            f"ingested {len(result.deliveries)} new deliveries: {result.rows_read} rows read, "
            f"{result.rows_loaded} loaded, {result.rows_quarantined} quarantined"
        )
        if result.ignored_files:
            context.log.warning(f"files matching no contract pattern were not read: {', '.join(result.ignored_files)}")
        for table in RAW_TABLES + MANIFEST_TABLES:
            metadata = table_metadata(con, table)
            if table == "raw.deliveries":
                metadata["new_deliveries"] = len(result.deliveries)
                metadata["rows_read_this_run"] = result.rows_read
                metadata["ignored_files"] = dg.MetadataValue.text(", ".join(result.ignored_files) or "none")
            yield dg.MaterializeResult(asset_key=_key(table), metadata=metadata)


@dg.asset_check(asset=_key("raw.deliveries"), blocking=True, description="Rows read = rows loaded + rows quarantined, per delivery.")
def nothing_lost_in_ingestion(context: dg.AssetCheckExecutionContext, settings: PipelineSettings) -> dg.AssetCheckResult:
    with settings.build(context.run.run_id) as con:
        loaded = " union all ".join(
            f"select _delivery_id as delivery_id, count(*) as n from {table} group by 1" for table in RAW_TABLES
        )
        mismatched = con.execute(
            f"""
            with loaded as ({loaded}),
            quarantined as (select delivery_id, count(*) as n from quality.quarantine group by 1)
            select deliveries.file
            from raw.deliveries as deliveries
            left join loaded using (delivery_id)
            left join quarantined using (delivery_id)
            where deliveries.rows_read <> coalesce(loaded.n, 0) + coalesce(quarantined.n, 0)
                or deliveries.rows_loaded <> coalesce(loaded.n, 0)
            """
        ).fetchall()
    return dg.AssetCheckResult(
        passed=not mismatched,
        metadata={"deliveries_not_reconciled": dg.MetadataValue.text(", ".join(f for (f,) in mismatched) or "none")},
    )


source_summary = sql_asset(
    "quality/source_summary",
    deps=["raw/deliveries", *[f"raw/{spec.table}" for spec in source_files()]],
    group="ingest",
    description="Per delivery: rows read, loaded and quarantined, and presence and validity of identifying fields.",
    standardizers=True,
)
