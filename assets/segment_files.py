"""Marketing export files: one CSV per segment per run.

The e-mail audience of a segment holds only customers whose latest statement
for e-mail marketing is consent (core.customers.has_email_consent). Every cell
is made safe to open in a spreadsheet: text that a spreadsheet would run as a
formula is prefixed with a quote, while numbers and E.164 phones stay readable.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from datetime import date
from pathlib import Path

import duckdb

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain number or an E.164 phone starts with + or - but is data, not a formula.
SAFE_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")

EXPORT_QUERY = """
select
    customers.customer_id,
    customers.first_name,
    customers.email,
    customers.phone_e164,
    balances.tier,
    balances.points_balance,
    segments.rfm_segment,
    segments.r_score,
    segments.f_score,
    segments.m_score,
    segments.recency_days,
    segments.frequency,
    segments.monetary
from marts.segments as segments
join core.customers as customers using (customer_id)
join loyalty.balances as balances using (customer_id)
where segments.rfm_segment = ?
    and customers.has_email_consent
    and customers.email is not null
order by customers.customer_id
"""


def neutralize_formula(value: object) -> object:
    """Prefix a quote to text a spreadsheet would evaluate (=HYPERLINK(...), @SUM, +cmd)."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not SAFE_NUMBER.fullmatch(value):
        return "'" + value
    return value


def segment_file_name(segment: str) -> str:
    """'Can't Lose Them' -> 'cant_lose_them'."""
    return re.sub(r"[^a-z0-9]+", "_", segment.lower().replace("'", "")).strip("_")


def write_segment_export(con: duckdb.DuckDBPyConnection, segment: str, folder: Path) -> dict:
    cursor = con.execute(EXPORT_QUERY, [segment])
    header = [column[0] for column in cursor.description]
    rows = cursor.fetchall()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{segment_file_name(segment)}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([neutralize_formula(cell) for cell in row] for row in rows)
    return {
        "segment": segment,
        "file": path.name,
        "rows": len(rows),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def write_segment_exports(con: duckdb.DuckDBPyConnection, exports_dir: Path, as_of: date) -> list[dict]:
    """One CSV per segment of marts.segments under <exports>/<as-of>/, plus manifest.json."""
    folder = Path(exports_dir) / as_of.isoformat()
    segments = [row[0] for row in con.execute("select distinct rfm_segment from marts.segments order by 1").fetchall()]
    files = [write_segment_export(con, segment, folder) for segment in segments]
    manifest = {"as_of": as_of.isoformat(), "audience": "email, consented customers only", "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return files
