"""Erasure after the publish: when older copies are scrubbed, and the inbox's request files.

The erasure step (assets/privacy/erasure.py) removes a person from the run's build; the
copies the project keeps outside it (previous versions, failed builds, exports of earlier
dates, record-level Splink charts) are scrubbed by assets/privacy/copies.py once the run has
published. This module decides when that work is due and what of the inbox goes.

**When the copies are scrubbed and searched.** A copy written after an erasure cannot hold
the person (every build from then on starts from the erased warehouse), so the work is due
only for a completed request the copies have not yet been found clear of. A small record
beside the warehouse (`<warehouse>.erasures_reached.json`: request ids only, no personal
data) lists the completed requests whose copies a search found clean; the step works when
the published warehouse has a completed request not in it: in the run that completes a
request, and again in every run after until a search comes back clean (a run that failed
after its publish, a lost record). Any other run only reads privacy.erasure_log: no file
is opened, so a run without new erasures pays nothing.

**The request files.** A request file in the inbox (`privacy/erasure_requests_*.csv`) holds
the e-mail or phone it was sent with. Once the published warehouse has completed every
request loaded from it, it is removed (its content hash stays in raw.deliveries, so it
would not be ingested again anyway); a copy of it delivered under another name too. A file
with a request that needs review is kept (the steward settles it, and the next run reads it
again); so is a file whose bytes differ from the ones ingested (a new delivery under an old
name). Checked in every run: it only reads two small tables and stats a few files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zlib
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from assets.ingest.deliveries import DeliveryError, open_in_inbox
from assets.privacy.copies import MODEL_LEVEL_CHARTS
from assets.shared.warehouse import Warehouse

REQUESTS_FILE_KIND = ("privacy", "erasure_requests")  # (source, entity) in raw.deliveries


def reached_record(warehouse: Warehouse) -> Path:
    """Where the completed requests whose copies were found clean are listed."""
    path = warehouse.published_path
    return path.with_name(f"{path.stem}.erasures_reached.json")


def _read_only(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where database_name = current_database() "
            "and schema_name = ? and table_name = ?",
            [schema, name],
        ).fetchall()[0][0]
    )


def completed_requests(warehouse: Warehouse) -> list[str]:
    """Every completed request of the published warehouse (none before the first erasure)."""
    if not warehouse.published_path.exists():
        return []
    con = _read_only(warehouse.published_path)
    try:
        if not _has_table(con, "privacy.erasure_log"):
            return []
        rows = con.execute(
            "select request_id from privacy.erasure_log where status = 'completed' order by 1"
        ).fetchall()
    finally:
        con.close()
    return [request_id for (request_id,) in rows]


def requests_not_reached(warehouse: Warehouse) -> list[str]:
    """Completed requests the copies have not been found clear of yet: the work is due."""
    record = reached_record(warehouse)
    reached: set[str] = set()
    if record.is_file():
        try:
            reached = set(json.loads(record.read_text(encoding="utf-8"))["requests"])
        except (ValueError, KeyError, TypeError):
            reached = set()  # an unreadable record: search again, which is only slower
    return [request_id for request_id in completed_requests(warehouse) if request_id not in reached]


def record_reached(warehouse: Warehouse, request_ids: list[str]) -> None:
    """Add requests whose copies a search found clean to the record (written beside, renamed)."""
    record = reached_record(warehouse)
    known: set[str] = set()
    if record.is_file():
        try:
            known = set(json.loads(record.read_text(encoding="utf-8"))["requests"])
        except (ValueError, KeyError, TypeError):
            known = set()
    content = {
        "requests": sorted(known | set(request_ids)),
        "searched_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    partial = record.with_name(f".{record.name}.partial")
    partial.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, record)


def chart_date_to_keep(
    reports_dir: str | Path, as_of: date, erased_since: datetime | None
) -> date | None:
    """The run's own identity chart folder is kept when every record-level chart in it was
    written after the latest erasure (this run's identity step wrote it from erased data);
    otherwise (no identity step in this run, e.g. the loyalty_and_marts job) it goes too."""
    folder = Path(reports_dir) / "identity" / as_of.isoformat()
    if not folder.is_dir():
        return None
    if erased_since is None:
        return as_of
    since = erased_since.timestamp()
    written = [
        path.stat().st_mtime
        for path in folder.iterdir()
        if path.is_file() and path.name not in MODEL_LEVEL_CHARTS
    ]
    return as_of if all(mtime >= since for mtime in written) else None


# --- the inbox's request files --------------------------------------------------------------

SETTLED_FILES_SQL = """
with request_files as (
    select delivery_id, file from raw.deliveries where source = ? and entity = ?
),
requests as (
    select files.delivery_id, files.file, log.status
    from request_files as files
    join raw.erasure_requests as requests on requests._delivery_id = files.delivery_id
    left join privacy.erasure_log as log using (request_id)
),
settled as (
    -- Every request loaded from the file completed; a file none of whose rows loaded is not.
    select delivery_id, file from requests
    group by all
    having bool_and(coalesce(status = 'completed', false))
)
select delivery_id, file from settled
union all
-- The same bytes delivered again under another name: recorded, not ingested, still there.
select duplicates.sha256, duplicates.file
from raw.duplicate_deliveries as duplicates
join settled on duplicates.duplicate_of = settled.file
order by file
"""


def settled_request_files(published: Path) -> list[tuple[str, str]]:
    """(content sha256, file relative to the inbox) of every request file whose requests the
    published warehouse has all completed."""
    if not published.exists():
        return []
    con = _read_only(published)
    try:
        needed = (
            "raw.deliveries",
            "raw.duplicate_deliveries",
            "raw.erasure_requests",
            "privacy.erasure_log",
        )
        if not all(_has_table(con, table) for table in needed):
            return []
        return con.execute(SETTLED_FILES_SQL, list(REQUESTS_FILE_KIND)).fetchall()
    finally:
        con.close()


def _content_hashes(inbox: Path, name: str) -> set[str]:
    """The hashes a delivery of this file could be recorded under: of its content (decompressed
    for a .gz), and of its bytes. Read without following links, like ingestion reads."""
    content, file_bytes = hashlib.sha256(), hashlib.sha256()
    with open_in_inbox(inbox, name) as handle:
        data = handle.read()
    file_bytes.update(data)
    content.update(gzip.decompress(data) if name.endswith(".gz") else data)
    return {content.hexdigest(), file_bytes.hexdigest()}


def applied_request_files(inbox: str | Path, published: Path) -> tuple[list[str], list[str]]:
    """Request files in the inbox whose requests the published warehouse has all completed:
    (those whose bytes are the ones ingested, those that changed or cannot be read), as paths
    relative to the inbox: names, never content."""
    inbox = Path(inbox)
    same: list[str] = []
    changed: list[str] = []
    if not inbox.is_dir():
        return same, changed
    for delivery_id, name in settled_request_files(published):
        path = inbox / name
        if not path.exists() and not path.is_symlink():
            continue
        try:
            ingested = delivery_id in _content_hashes(inbox, name)
        except (DeliveryError, OSError, EOFError, zlib.error):
            ingested = False
        (same if ingested else changed).append(name)
    return same, changed


def remove_settled_request_files(inbox: str | Path, published: Path) -> tuple[list[str], list[str]]:
    """Remove from the inbox every request file whose requests are all completed, when its
    bytes are the ones ingested. Returns (removed, kept because they changed or cannot be read)."""
    removed, kept = applied_request_files(inbox, published)
    for name in removed:
        (Path(inbox) / name).unlink()
    return removed, kept
