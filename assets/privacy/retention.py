"""Retention: personal data the pipeline no longer uses is purged after `retention_days`.

Every run purges (docs/privacy.md "Retention" says the rules for the data protection officer):

- raw rows that are no longer in use, of deliveries older than the cutoff: a raw table keeps
  every delivered version of a key, and staging reads only the latest of each key
  (macro latest_of, assets/shared/macros.sql). A row is purged when its delivery was
  delivered before the cutoff AND it is not the latest version of its key (nor a row
  staging reads besides the latest: STILL_READ). The latest version of a key is current
  data, however old its delivery: a customer who registered five years ago and never
  changed is a current customer, not retention debris, and purging the row would delete
  them (and their orders) from the warehouse;
- every quarantined row of a delivery older than the cutoff (it holds the row's raw text
  and is never loaded), and the field issues of purged raw rows;
- earlier versions of the warehouse and failed builds (assets/shared/warehouse.py
  Warehouse.expire_previous_versions and clean_leftovers).

The cutoff is the run's as-of date minus retention_days, compared with the delivery date
of the file name (`delivered_on`), the clock latest_of orders versions by; a delivery
exactly retention_days old is kept. A purged delivery stays in raw.deliveries with its
content hash, so the same file delivered again is still recognised and not ingested anew;
its rows_purged and quarantine_rows_purged say how many of its rows were purged, so rows
read = rows loaded + rows quarantined still holds and the rows present are
rows_loaded - rows_purged (the check nothing_lost_in_ingestion counts them).

Everything is set-based: one delete per raw table, whatever the number of rows.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from assets.ingest.contract import source_files
from assets.ingest.deliveries import create_raw_tables
from assets.shared.warehouse import Warehouse

# Rows a staging model reads besides the latest version of each key, per raw table (without
# the schema): a select of their (_delivery_id, _line). staging/web_orders.sql dates a refund
# by the first delivery that showed the order refunded, so that row stays.
# tests/test_retention.py fails when a staging model reads a raw table another way.
# Models that read every delivered row on purpose and whose older rows retention may take:
# the history they show shortens with the raw rows. core.consent_history keeps the statement
# in effect (a record's latest row is never purged), which is the consent the exports rely
# on; superseded statements older than retention_days go, as any other personal data.
PURGED_WITH_RAW = {"consent_history"}

STILL_READ = {
    "web_orders": """
        select _delivery_id, _line from raw.web_orders
        where status = 'refunded'
        qualify row_number() over (partition by order_id order by _delivered_on, _file, _line) = 1
    """,
}


@dataclass
class RawPurge:
    """What purge_raw_rows removed: counts only, never a value."""

    cutoff_on: date
    rows_purged: dict[str, int] = field(default_factory=dict)  # raw table -> rows
    quarantine_rows_purged: int = 0
    field_issues_purged: int = 0
    deliveries_touched: int = 0

    @property
    def raw_rows_purged(self) -> int:
        return sum(self.rows_purged.values())


def cutoff_date(as_of: date, retention_days: int) -> date:
    """Deliveries delivered before this date are older than retention_days."""
    return as_of - timedelta(days=retention_days)


def _key_list(columns: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{column}'" for column in columns) + "]"


def purge_raw_rows(con: duckdb.DuckDBPyConnection, cutoff_on: date, now: datetime) -> RawPurge:
    """Delete raw rows no longer in use and quarantine rows of deliveries delivered before
    `cutoff_on`, and count them per delivery in raw.deliveries. Needs the macros
    (assets/shared/macros.sql) on the connection, as every run's connection has them."""
    create_raw_tables(con)  # with raw.deliveries' purge counters, on warehouses made before them
    purge = RawPurge(cutoff_on)
    con.execute(
        "create or replace temp table purged_rows (raw_table varchar, delivery_id varchar, line bigint)"
    )
    for spec in source_files():
        table = f"raw.{spec.table}"
        still_read = f"select _delivery_id, _line from latest_of('{table}', {_key_list(spec.key)})"
        if spec.table in STILL_READ:
            still_read += f" union all ({STILL_READ[spec.table]})"
        con.execute(
            f"""
            insert into purged_rows
            with still_read as ({still_read})
            select ?, old._delivery_id, old._line
            from {table} as old
            anti join still_read using (_delivery_id, _line)
            where old._delivered_on < ?
            """,
            [table, cutoff_on],
        )
        con.execute(
            f"""
            delete from {table} as old
            using purged_rows
            where purged_rows.raw_table = ?
                and old._delivery_id = purged_rows.delivery_id and old._line = purged_rows.line
            """,
            [table],
        )
        count = con.execute(
            "select count(*) from purged_rows where raw_table = ?", [table]
        ).fetchall()[0][0]
        if count:
            purge.rows_purged[table] = count
    con.execute(
        """
        create or replace temp table purged_quarantine as
        select quarantine.delivery_id, count(*) as n
        from quality.quarantine as quarantine
        join raw.deliveries as deliveries using (delivery_id)
        where deliveries.delivered_on < ?
        group by 1""",
        [cutoff_on],
    )
    con.execute(
        "delete from quality.quarantine where delivery_id in (select delivery_id from purged_quarantine)"
    )
    purge.field_issues_purged = con.execute(
        """
        select count(*) from quality.field_issues as issues
        semi join purged_rows on issues.delivery_id = purged_rows.delivery_id and issues.line = purged_rows.line
        """
    ).fetchall()[0][0]
    con.execute(
        """
        delete from quality.field_issues as issues
        using purged_rows
        where issues.delivery_id = purged_rows.delivery_id and issues.line = purged_rows.line
        """
    )
    con.execute(
        """
        create or replace temp table purged_per_delivery as
        with
        raw_rows as (select delivery_id, count(*) as n from purged_rows group by 1),
        counted as (
            select
                delivery_id,
                coalesce(raw_rows.n, 0) as rows_purged,
                coalesce(purged_quarantine.n, 0) as quarantine_rows_purged
            from raw_rows
            full join purged_quarantine using (delivery_id)
        )
        select * from counted"""
    )
    con.execute(
        """
        update raw.deliveries as deliveries
        set rows_purged = deliveries.rows_purged + purged.rows_purged,
            quarantine_rows_purged = deliveries.quarantine_rows_purged + purged.quarantine_rows_purged,
            purged_at = ?
        from purged_per_delivery as purged
        where deliveries.delivery_id = purged.delivery_id""",
        [now],
    )
    purge.quarantine_rows_purged, purge.deliveries_touched = con.execute(
        "select coalesce(sum(quarantine_rows_purged), 0), count(*) from purged_per_delivery"
    ).fetchall()[0]
    for temp in ("purged_rows", "purged_quarantine", "purged_per_delivery"):
        con.execute(f"drop table {temp}")
    return purge


@dataclass
class FilePurge:
    """Files removed: earlier versions of the warehouse and what failed runs left in builds/."""

    previous_versions: list[Path] = field(default_factory=list)
    failed_builds: list[Path] = field(default_factory=list)


def purge_files(warehouse: Warehouse) -> FilePurge:
    """Earlier versions older than retention_days, failed builds older than two days (or
    retention_days when shorter). Call it holding the run lock, as every run step does."""
    return FilePurge(
        previous_versions=warehouse.expire_previous_versions(),
        failed_builds=failed_builds(warehouse.clean_leftovers()),
    )


def failed_builds(removed: list[Path]) -> list[Path]:
    """The builds (main or analytics files) among what clean_leftovers removed; the rest are
    half copies, logs and bookkeeping files of those builds."""
    return [path for path in removed if path.name.endswith(".duckdb")]


def purge_dated_folders(parent: Path, cutoff_on: date) -> list[Path]:
    """Remove the folders of `parent` named after a date (YYYY-MM-DD) before `cutoff_on`: the
    exports of past as-of dates (audiences with contact data) and identity's charts of past
    runs (Splink's cluster studio shows records). Folders not named after a date are not ours
    to judge and stay. Returns what was removed."""
    removed = []
    if not parent.is_dir():
        return removed
    for folder in sorted(parent.iterdir()):
        try:
            named_on = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if folder.is_dir() and not folder.is_symlink() and named_on < cutoff_on:
            shutil.rmtree(folder)
            removed.append(folder)
    return removed
