"""Marketing export files: one CSV and one Parquet file per segment per run.

Exported segmentations are RFM, lifecycle and marketing's custom segments. Each file
holds the customers of one segment who may be contacted on its channel: an e-mail
audience only customers whose latest marketing_opt_in statement is consent and who have
an e-mail, a push audience only those whose latest push_opt_in statement is consent
(core.customers.has_email_consent / has_push_consent). RFM and lifecycle segments are
e-mail audiences; a custom segment names its channel.

Columns: customer_id, the preferred first name, e-mail, E.164 phone, tier, points
balance, then the segment's reason columns; with `hashes`, SHA-256 of the normalized
e-mail and phone for ad platforms' customer-match uploads. Every CSV cell is safe to open
in a spreadsheet: text a spreadsheet would run as a formula is prefixed with a quote,
while numbers and E.164 phones stay readable.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from assets.program import Program

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain number or an E.164 phone starts with + or - but is data, not a formula.
SAFE_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
FORMATS = ("csv", "parquet")

CONSENT = {"email": "customers.has_email_consent and customers.email is not null",
           "push": "customers.has_push_consent"}

# Why a customer is in a segment, per segmentation (columns of marts.segments).
REASON_COLUMNS = {
    "rfm": ["rfm_segment", "r_score", "f_score", "m_score", "recency_days", "frequency", "monetary"],
    "lifecycle": ["lifecycle_stage", "first_purchase_on", "last_purchase_on", "recency_days"],
}

# The normalized forms the large ad platforms hash: a trimmed, lower-case e-mail; the
# phone in E.164 with its + (Google Customer Match) and as digits only (Meta).
HASH_COLUMNS = """,
    sha256(lower(trim(customers.email))) as email_sha256,
    sha256(customers.phone_e164) as phone_sha256,
    sha256(replace(customers.phone_e164, '+', '')) as phone_digits_sha256"""


@dataclass(frozen=True)
class Audience:
    segmentation: str  # rfm, lifecycle or custom
    segment: str
    channel: str  # email or push
    reasons: tuple[str, ...]  # columns of marts.segments or loyalty.balances

    @property
    def file_stem(self) -> str:
        return f"{self.segmentation}_{segment_file_name(self.segment)}"


def neutralize_formula(value: object) -> object:
    """Prefix a quote to text a spreadsheet would evaluate (=HYPERLINK(...), @SUM, +cmd)."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not SAFE_NUMBER.fullmatch(value):
        return "'" + value
    return value


def segment_file_name(segment: str) -> str:
    """'Can't Lose Them' -> 'cant_lose_them'."""
    return re.sub(r"[^a-z0-9]+", "_", segment.lower().replace("'", "")).strip("_")


def audiences(con: duckdb.DuckDBPyConnection, program: Program) -> list[Audience]:
    """Every exported segment: those present in marts.segment_memberships, and every custom one."""
    found = con.execute(
        "select distinct segmentation, segment from marts.segment_memberships "
        "where segmentation in ('rfm', 'lifecycle') order by all"
    ).fetchall()
    listed = [Audience(seg, name, "email", tuple(REASON_COLUMNS[seg])) for seg, name in found]
    for custom in program.segmentation.custom:
        reasons = tuple(dict.fromkeys(condition.column for condition in custom.conditions))
        listed.append(Audience("custom", custom.name, custom.channel, reasons))
    return listed


def audience_query(audience: Audience, hashes: bool) -> str:
    # Reason columns come from the program's validated definitions or REASON_COLUMNS;
    # quoted as identifiers, and the segment name is a bound parameter.
    reasons = "".join(f',\n    "{column}"' for column in audience.reasons)
    return f"""
select
    customers.customer_id,
    customers.first_name,
    customers.email,
    customers.phone_e164,
    balances.tier,
    balances.points_balance{reasons}{HASH_COLUMNS if hashes else ""}
from marts.segment_memberships as memberships
join marts.segments using (customer_id)
join loyalty.balances as balances using (customer_id)
join core.customers as customers using (customer_id)
where memberships.segmentation = ? and memberships.segment = ?
    and {CONSENT[audience.channel]}
order by customers.customer_id
"""


def write_audience(con: duckdb.DuckDBPyConnection, audience: Audience, folder: Path,
                   formats: tuple[str, ...] = FORMATS, hashes: bool = False) -> dict:
    """The audience's files in `folder`; its manifest entry."""
    table = con.sql(audience_query(audience, hashes), params=[audience.segmentation, audience.segment]).to_arrow_table()
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"segmentation": audience.segmentation, "segment": audience.segment, "channel": audience.channel,
             "rows": table.num_rows, "files": {}}
    for kind in formats:
        path = folder / f"{audience.file_stem}.{kind}"
        if kind == "csv":
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(table.column_names)
                writer.writerows([neutralize_formula(cell) for cell in row.values()] for row in table.to_pylist())
        else:
            pq.write_table(table, path)
        entry["files"][kind] = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return entry


def write_segment_exports(con: duckdb.DuckDBPyConnection, program: Program, exports_dir: Path, as_of: date,
                          formats: tuple[str, ...] = FORMATS, hashes: bool = False,
                          only: str | None = None) -> list[dict]:
    """Files per segment under <exports>/<as-of>/ and manifest.json; `only` names one segment."""
    folder = Path(exports_dir) / as_of.isoformat()
    chosen = [a for a in audiences(con, program) if only is None or only in (a.segment, a.file_stem)]
    if only is not None and not chosen:
        known = ", ".join(a.segment for a in audiences(con, program))
        raise ValueError(f"no segment named {only!r} (known: {known})")
    entries = [write_audience(con, audience, folder, formats, hashes) for audience in chosen]
    manifest_path = folder / "manifest.json"
    manifest = {"as_of": as_of.isoformat(), "files": []}
    if only is not None and manifest_path.exists():
        # Re-exporting one segment keeps the other segments' entries.
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["files"] = [f for f in manifest["files"] if (f["segmentation"], f["segment"]) not in
                             {(e["segmentation"], e["segment"]) for e in entries}]
    manifest["files"] = sorted(manifest["files"] + entries, key=lambda f: (f["segmentation"], f["segment"]))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return entries
