"""`omniloyal subject-export`: everything held on one person, as JSON (GDPR article 15).

    omniloyal subject-export --email ann@example.com --out ann.json
    omniloyal subject-export --phone "07911 123456" --out ann.json
    omniloyal subject-export --customer-id C0123456789AB --out ann.json

Who the person is: the customers with a record carrying that e-mail (trimmed, any case) or a
phone ending in the digits given (as `omniloyal find` reads phones: 07911 123456, +44 7911
123456 and 0044 7911 123456 all find +447911123456), or the customer_id. Any record counts,
not only the profile's preferred value: an old e-mail still on one record finds the person.
Several customers found (two profiles of one person, or a household sharing a phone): the
file holds each, and says so; whoever hands it over checks each is the person asking.

What is in it, per customer, read from the published warehouse (read-only) with
`select * ... where customer_id = ?`, so a column added to a table later is exported too:
the profile with each value's source (core.customers), every source record (core.customer_records)
and every delivered row of those records (raw tables), consent statements with their dates
(core.consent_history), events (core.events), ledger entries and balance (loyalty.ledger,
loyalty.balances), tier history (loyalty.tier_history), segments (marts.segments,
marts.segment_memberships), paid memberships (loyalty.memberships), partner sales matched
to them (loyalty.partner_transactions), the campaigns they were in and their arm
(loyalty.campaign_assignments), the referrals they took part in on either side (their role,
status and points, not the other party), and the export files of every date they appear in: each
<exports>/<date>/manifest.json lists the files; DuckDB reads them all set-based and finds the
customer_id (extern_id in Meta files) or, in Google's hashed-only files, the SHA-256 of one
of their records' e-mails or phones. docs/privacy.md describes the file's format.

The file is unmasked (it is for the person) and written with mode 0600, beside its final
name and renamed, so a reader never finds half of it. Nothing here prints or logs a value.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import duckdb

from assets.shared.catalog import documented
from pipelines.find import phone_ending

FORMAT = "omniloyal-subject-export/1"

# Each section: the table, whether a customer has one row (an object) or many (a list),
# and the order of its rows.
SECTIONS = {
    "profile": ("core.customers", "one", "customer_id"),
    "source_records": ("core.customer_records", "many", "source, source_record_id"),
    "consent_history": (
        "core.consent_history",
        "many",
        "channel, stated_at, source, source_record_id",
    ),
    "events": ("core.events", "many", "occurred_at, event_id"),
    "ledger": ("loyalty.ledger", "many", "occurred_at, entry_id"),
    "balance": ("loyalty.balances", "one", "customer_id"),
    "tier_history": ("loyalty.tier_history", "many", "valid_from, tier_rank"),
    "segments": ("marts.segments", "one", "customer_id"),
    "segment_memberships": ("marts.segment_memberships", "many", "segmentation, segment"),
    "memberships": ("loyalty.memberships", "many", "paid_at, order_id"),
    "partner_sales": ("loyalty.partner_transactions", "many", "occurred_at, partner_txn_id"),
    "campaigns": ("loyalty.campaign_assignments", "many", "campaign"),
}

# The referrals the person took part in, on either side: their role, what came of it and
# the points it gave them. Neither the other party's customer_id nor their record is in it.
REFERRALS = """
select
    case when referred_customer_id = $customer_id then 'referred' else 'referrer' end as role,
    registered_at,
    window_ends_at,
    qualified_at,
    status,
    reason,
    case when referred_customer_id = $customer_id then referred_points else referrer_points end as points
from loyalty.referrals
where $customer_id in (referrer_customer_id, referred_customer_id)
order by registered_at, referral_id
"""

# The raw table of each customer-record source and its key (schemas/sources): every row of
# every delivery of a record is kept there, older values included.
RAW_RECORD_TABLES = {
    "web": ("raw.web_customers", "account_id"),
    "app": ("raw.app_users", "user_id"),
    "store": ("raw.store_members", "card_number"),
    "callcenter": ("raw.callcenter_contacts", "contact_id"),
}

# What identifies a customer in an export file, by the manifest entry's `platform`: plain
# files and Meta's carry the customer_id; Google's only hashes (assets/exports/ad_platforms.py).
ID_COLUMNS = {None: "customer_id", "meta": "extern_id"}
GOOGLE_HASHES = {
    "Email": "sha256(nullif(lower(trim(email)), ''))",
    "Phone": "sha256(nullif(phone_e164, ''))",
}


class SubjectExportError(ValueError):
    """A request that cannot be answered: no such person, or an unreadable export folder.
    The message is one line and carries no personal value."""


def find_subject(
    con: duckdb.DuckDBPyConnection,
    email: str | None = None,
    phone: str | None = None,
    customer_id: str | None = None,
) -> list[str]:
    """The customer_ids of the person, sorted; SubjectExportError when none."""
    if email is not None:
        if not email.strip():
            raise SubjectExportError("--email is empty")
        by, condition, value = "that e-mail", "lower(trim(email)) = lower(trim(?))", email
    elif phone is not None:
        by, condition, value = "that phone", "ends_with(phone_e164, ?)", phone_ending(phone)
    elif customer_id is not None:
        by, condition, value = "that customer_id", "customer_id = trim(?)", customer_id
    else:
        raise SubjectExportError("give --email, --phone or --customer-id")
    found = con.execute(
        f"select distinct customer_id from core.customer_records where {condition} order by 1",
        [value],
    ).fetchall()
    if not found:
        raise SubjectExportError(f"no customer with {by} in the warehouse")
    return [row[0] for row in found]


def json_value(value: object) -> object:
    """A warehouse value as JSON: dates and times as ISO text (times are UTC), decimals as
    text (exact: 12.50 stays 12.50), NaN and infinities as null, structs and lists inside out."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [{n: json_value(v) for n, v in zip(names, row)} for row in cursor.fetchall()]


def customer_sections(con: duckdb.DuckDBPyConnection, customer_id: str) -> dict:
    """Every section of one customer, and the delivered rows of their records."""
    held: dict = {"customer_id": customer_id}
    present = {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select schema_name, table_name from duckdb_tables()"
        ).fetchall()
    }
    for section, (table, shape, order) in SECTIONS.items():
        # A warehouse published before a table existed holds nothing of it.
        rows = (
            _rows(
                con, f"select * from {table} where customer_id = ? order by {order}", [customer_id]
            )
            if table in present
            else []
        )
        held[section] = (rows[0] if rows else None) if shape == "one" else rows
    held["referrals"] = (
        _rows(con, REFERRALS, {"customer_id": customer_id})
        if "loyalty.referrals" in present
        else []
    )
    held["delivered_rows"] = delivered_rows(con, customer_id)
    return held


def delivered_rows(con: duckdb.DuckDBPyConnection, customer_id: str) -> list[dict]:
    """Every delivered row of the customer's records, as delivered (raw tables), oldest first."""
    rows = []
    for source, (table, key) in RAW_RECORD_TABLES.items():
        found = _rows(
            con,
            f"""
            select raw_rows.*
            from {table} as raw_rows
            join identity.source_records as records
                on records.source = ? and records.source_record_id = raw_rows.{key}
            where records.customer_id = ?
            order by raw_rows.{key}, raw_rows._delivered_on, raw_rows._file, raw_rows._line
            """,
            [source, customer_id],
        )
        rows += [{"source": source, "table": table, "row": row} for row in found]
    return rows


def export_files(exports_dir: Path) -> list[dict]:
    """Every file the manifests of every date under `exports_dir` list and that is still there:
    as_of, segmentation, segment, channel, platform and path (Parquet when both were written:
    the same rows, typed)."""
    if not exports_dir.is_dir():
        return []
    files = []
    for folder in sorted(p for p in exports_dir.iterdir() if p.is_dir()):
        manifest_path = folder / "manifest.json"
        if folder.name.startswith(".") or not manifest_path.is_file():
            continue  # a run's staging folder, or not an export date
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            entries = manifest["files"]
            for entry in entries:
                kind = "parquet" if "parquet" in entry["files"] else "csv"
                path = folder / entry["files"][kind]["file"]
                if path.is_file():
                    files.append(
                        {
                            "as_of": manifest.get("as_of", folder.name),
                            "segmentation": entry["segmentation"],
                            "segment": entry["segment"],
                            "channel": entry.get("channel"),
                            "platform": entry.get("platform"),
                            "kind": kind,
                            "path": path,
                        }
                    )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise SubjectExportError(
                f"{manifest_path}: not an export manifest (JSON with files[].files.csv|parquet.file)"
            ) from None
    return files


def _reader(kind: str) -> str:
    # all_varchar: a plain file's columns differ by segment; union_by_name lines them up.
    if kind == "parquet":
        return "read_parquet(?, filename = true, union_by_name = true)"
    return "read_csv(?, filename = true, union_by_name = true, all_varchar = true)"


def export_appearances(
    con: duckdb.DuckDBPyConnection, exports_dir: Path, customer_ids: list[str]
) -> dict[str, list[dict]]:
    """customer_id -> the export files (of every date) that hold them.

    One DuckDB read per kind of file (plain or Meta by customer_id, Google by hashes; CSV or
    Parquet), over every file of that kind at once: set-based, however many dates there are.
    """
    appearances: dict[str, list[dict]] = {c: [] for c in customer_ids}
    files = export_files(exports_dir)
    by_path = {str(f["path"]): f for f in files}
    groups: dict[tuple, list[str]] = {}
    for f in files:
        groups.setdefault((f["platform"], f["kind"]), []).append(str(f["path"]))
    # The hashes Google's files would hold for the person: of every e-mail and phone on their records.
    hash_owners = con.execute(
        f"""
        select distinct customer_id, unnest(['Email', 'Phone']) as header,
               unnest([{GOOGLE_HASHES["Email"]}, {GOOGLE_HASHES["Phone"]}]) as hash
        from core.customer_records
        where customer_id in (select unnest(?))
        """,
        [customer_ids],
    ).fetchall()
    for (platform, kind), paths in sorted(groups.items(), key=lambda g: (g[0][0] or "", g[0][1])):
        try:
            if platform == "google":
                found = con.execute(
                    f"""
                    select distinct filename, owners.customer_id
                    from {_reader(kind)} as file
                    join (select unnest(?) as customer_id, unnest(?) as header, unnest(?) as hash) as owners
                        on (owners.header = 'Email' and file."Email" = owners.hash)
                        or (owners.header = 'Phone' and file."Phone" = owners.hash)
                    """,
                    [
                        paths,
                        [h[0] for h in hash_owners],
                        [h[1] for h in hash_owners],
                        [h[2] for h in hash_owners],
                    ],
                ).fetchall()
            else:
                column = ID_COLUMNS.get(platform, "customer_id")
                found = con.execute(
                    f"""
                    select distinct filename, cast("{column}" as varchar)
                    from {_reader(kind)}
                    where cast("{column}" as varchar) in (select unnest(?))
                    """,
                    [paths, customer_ids],
                ).fetchall()
        except duckdb.Error:
            # DuckDB's message may quote a line of the file: personal data stays out of it.
            raise SubjectExportError(
                f"{exports_dir}: a {kind} export file a manifest lists cannot be read"
            ) from None
        for filename, customer_id in found:
            f = by_path[filename]
            appearances[customer_id].append(
                {
                    "as_of": f["as_of"],
                    "segmentation": f["segmentation"],
                    "segment": f["segment"],
                    "channel": f["channel"],
                    "platform": f["platform"],
                    "file": str(f["path"]),
                }
            )
    for listed in appearances.values():
        listed.sort(key=lambda a: (a["as_of"], a["file"]))
    return appearances


def glossary() -> dict[str, dict]:
    """What each exported table and column is (schemas/warehouse/), for the person reading the file."""
    tables = [table for table, _, _ in SECTIONS.values()] + ["loyalty.referrals"]
    tables += [table for table, _ in RAW_RECORD_TABLES.values()]
    catalog = documented()
    return {
        table: {
            "description": catalog[table].description,
            "columns": {c.name: c.description for c in catalog[table].columns},
        }
        for table in tables
        if table in catalog
    }


def subject_export(
    con: duckdb.DuckDBPyConnection,
    customer_ids: list[str],
    exports_dir: Path,
    asked_by: dict[str, str],
) -> dict:
    """The whole document for the customers found (docs/privacy.md, "Subject access")."""
    appearances = export_appearances(con, exports_dir, customer_ids)
    customers = []
    for customer_id in customer_ids:  # the customers of one person: a handful at most
        held = customer_sections(con, customer_id)
        held["exports"] = appearances[customer_id]
        customers.append(held)
    note = None
    if len(customer_ids) > 1:
        note = (
            f"{len(customer_ids)} customers match the request: each is included. They may be one "
            "person the pipeline holds as several, or several people sharing an identifier."
        )
    return {
        "format": FORMAT,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "request": asked_by,
        "exports_folder": str(exports_dir),
        "customers_found": len(customer_ids),
        "note": note,
        "customers": customers,
        "glossary": glossary(),
    }


def counts(document: dict) -> dict[str, int]:
    """How many of each kind of item the document holds: what the command prints (no values)."""
    customers = document["customers"]
    return {
        "customers": len(customers),
        "source records": sum(len(c["source_records"]) for c in customers),
        "delivered rows": sum(len(c["delivered_rows"]) for c in customers),
        "consent statements": sum(len(c["consent_history"]) for c in customers),
        "events": sum(len(c["events"]) for c in customers),
        "ledger entries": sum(len(c["ledger"]) for c in customers),
        "tier changes": sum(len(c["tier_history"]) for c in customers),
        "segment memberships": sum(len(c["segment_memberships"]) for c in customers),
        "export files": sum(len(c["exports"]) for c in customers),
    }


def write_private_json(document: dict, out: Path) -> None:
    """Write `document` to `out` readable by its owner only (mode 0600), whole or not at all."""
    # mkstemp creates the file with mode 0600 before anything is written to it.
    fd, partial = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.chmod(partial, 0o600)
        os.replace(partial, out)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
