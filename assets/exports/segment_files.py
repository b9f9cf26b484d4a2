"""Marketing export files: one CSV and one Parquet file per segment per run.

Exported segmentations are RFM, lifecycle, marketing's custom segments and the treated
members of each started campaign (program file `campaigns`; its holdout is never exported). Each file
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

With `platform` (google or meta) a segment is written instead as a hashed-only file for that
ad platform, <stem>.<platform>.csv, in its upload template's columns and without a plain
e-mail, phone or name (assets/exports/ad_platforms.py).

A run writes its files to a staging folder, <exports>/.staging/<run_id>/<as-of>/, and
its publish step moves that folder into place as <exports>/<as-of>/ right after the
warehouse, in one rename (publish_segment_exports): the folder, manifest.json included,
is the old set or the new set, never a mix, and a run that does not publish leaves
nothing in <exports>/<as-of>/ (its staging is removed by the next run). A run killed
between the warehouse swap and the exports swap has its exports put in place by the next
run's start (finish_interrupted_publish): the published warehouse and the published
exports are always of one run once a run has started.
"""

from __future__ import annotations

import csv
import ctypes
import difflib
import errno
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from assets.exports import ad_platforms
from assets.loyalty.program import Program, segment_file_name

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain number or an E.164 phone starts with + or - but is data, not a formula.
SAFE_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
FORMATS = ("csv", "parquet")
# Under <exports>: one folder per run whose files are not published (yet).
STAGING = ".staging"
# In a run's staging folder: the identity of the build it is about to publish as the warehouse.
PUBLISHING = ".publishing.json"

CONSENT = {
    "email": "customers.has_email_consent and customers.email is not null",
    "push": "customers.has_push_consent",
}

# The columns every audience file starts with, in this order (audience_query).
BASE_COLUMNS = ("customer_id", "first_name", "email", "phone_e164", "tier", "points_balance")

# What each channel's tools need beside the base columns, and where it comes from: when the
# customer consented (proof for the e-mail platform); for push, the app account push tools
# address (the highest app user_id when a person has several).
CHANNEL_COLUMNS = {
    "email": (",\n    customers.email_consent_stated_at as consent_stated_at", ""),
    "push": (
        ",\n    app_accounts.app_user_id,\n    customers.push_consent_stated_at as consent_stated_at",
        """
left join (
    select customer_id, max(source_record_id) as app_user_id
    from identity.source_records
    where source = 'app'
    group by customer_id
) as app_accounts using (customer_id)""",
    ),
}

# Why a customer is in a segment, per segmentation (columns of marts.segments).
REASON_COLUMNS = {
    "rfm": [
        "rfm_segment",
        "r_score",
        "f_score",
        "m_score",
        "recency_days",
        "frequency",
        "historical_value",
    ],
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
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_START)
        and not SAFE_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def csv_cell(value: object) -> object:
    """A value as a CSV cell: booleans as true/false (as DuckDB and most tools write and
    read them, not Python's True), text safe from spreadsheet formulas."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return neutralize_formula(value)


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
    # A campaign's treated members, on its channel (the holdout is never exported). Only a
    # started campaign has members; one not started yet is exported when it starts.
    # A warehouse built before campaigns existed has no loyalty.campaign_assignments: no campaign.
    has_campaigns = con.execute(
        "select count(*) from duckdb_tables() "
        "where schema_name = 'loyalty' and table_name = 'campaign_assignments'"
    ).fetchall()[0][0]
    started = (
        {
            name
            for (name,) in con.execute(
                "select distinct campaign from loyalty.campaign_assignments"
            ).fetchall()
        }
        if has_campaigns
        else set()
    )
    for campaign in program.campaigns:
        if campaign.name in started:
            listed.append(Audience("campaign", campaign.name, campaign.channel, ()))
    return listed


def named_audience(listed: list[Audience], name: str) -> Audience:
    """The audience a person means by `name`: its segment name in any case, or its file stem
    (rfm_at_risk). ValueError, one line, when none or several match: the known names by
    segmentation, and the closest one."""
    wanted = name.strip().casefold()
    matches = [a for a in listed if wanted in (a.segment.casefold(), a.file_stem.casefold())]
    if len(matches) == 1:
        return matches[0]
    if matches:
        both = ", ".join(f"{a.segmentation} {a.segment!r} ({a.file_stem})" for a in matches)
        raise ValueError(
            f"{name!r} names {len(matches)} segments: {both}; give its file name instead"
        )
    by_segmentation: dict[str, list[str]] = {}
    for a in listed:
        by_segmentation.setdefault(a.segmentation, []).append(a.segment)
    known = "; ".join(f"{seg}: {', '.join(names)}" for seg, names in by_segmentation.items())
    by_folded = {a.segment.casefold(): a.segment for a in listed}
    close = difflib.get_close_matches(wanted, list(by_folded), n=1)
    hint = f" Did you mean {by_folded[close[0]]!r}?" if close else ""
    raise ValueError(f"no segment named {name!r}.{hint} Known: {known}")


def audience_query(audience: Audience, hashes: bool) -> str:
    # Reason columns come from the program's validated definitions or REASON_COLUMNS;
    # quoted as identifiers, and the segment name is a bound parameter. A condition on a
    # column every file has already (tier, points_balance) adds nothing: written twice, the
    # name would break every reader (pandas shifts columns, pyarrow refuses the file).
    reasons = "".join(
        f',\n    "{column}"' for column in audience.reasons if column not in BASE_COLUMNS
    )
    channel_columns, channel_join = CHANNEL_COLUMNS[audience.channel]
    return f"""
select
    customers.customer_id,
    customers.first_name,
    customers.email,
    customers.phone_e164,
    balances.tier,
    balances.points_balance{channel_columns}{reasons}{HASH_COLUMNS if hashes else ""}
from {ad_platforms.members_of(audience.segmentation)} as memberships
join marts.segments using (customer_id)
join loyalty.balances as balances using (customer_id)
join core.customers as customers using (customer_id){channel_join}
where memberships.segmentation = ? and memberships.segment = ?
    and {CONSENT[audience.channel]}
order by customers.customer_id
"""


def hashing_mode(hashes: bool, platform: str | None) -> str:
    """What the manifest says of a file's identifiers: `none` (plain), `added` (plain, and their
    SHA-256 beside them) or `only` (an ad platform's hashed-only file)."""
    if platform is not None:
        return "only"
    return "added" if hashes else "none"


def file_stem(audience: Audience, platform: str | None) -> str:
    """rfm_champions, or rfm_champions.google for an ad platform: segment_file_name never
    writes a dot, so no segment's plain file can take an ad-platform file's name."""
    return audience.file_stem if platform is None else f"{audience.file_stem}.{platform}"


def write_audience(
    con: duckdb.DuckDBPyConnection,
    audience: Audience,
    folder: Path,
    formats: tuple[str, ...] = FORMATS,
    hashes: bool = False,
    platform: str | None = None,
) -> dict:
    """The audience's files in `folder`; its manifest entry."""
    if platform is not None and hashes:
        raise ValueError("an ad platform's file is hashed-only: it takes no added hash columns")
    query = (
        audience_query(audience, hashes)
        if platform is None
        else platform_query(platform, audience.segmentation)
    )
    table = con.sql(query, params=[audience.segmentation, audience.segment]).to_arrow_table()
    folder.mkdir(parents=True, exist_ok=True)
    stem = file_stem(audience, platform)
    entry = {
        "segmentation": audience.segmentation,
        "segment": audience.segment,
        "channel": audience.channel,
        "platform": platform,
        "rows": table.num_rows,
        "columns": table.column_names,
        "hashing": hashing_mode(hashes, platform),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {},
    }
    for kind in formats:
        path = folder / f"{stem}.{kind}"
        # Written beside and renamed: `omniloyal export` rewrites a published folder, and a
        # reader must find the old file or the new one, never half of one.
        partial = folder / f".{path.name}.partial"
        if kind == "csv":
            # With a byte-order mark, Excel reads the file as UTF-8 (José, not JosÃ©); every
            # CSV reader of note skips it (pandas, DuckDB and Python's utf-8-sig). An ad
            # platform's file goes to its uploader, not Excel: plain UTF-8, so the first
            # header is `Email`, not a BOM and `Email`, and its values are ASCII anyway.
            encoding = "utf-8-sig" if platform is None else "utf-8"
            with partial.open("w", newline="", encoding=encoding) as handle:
                writer = csv.writer(handle)
                writer.writerow(table.column_names)
                writer.writerows(
                    [csv_cell(cell) for cell in row.values()] for row in table.to_pylist()
                )
        else:
            pq.write_table(table, partial)
        entry["files"][kind] = {
            "file": path.name,
            "sha256": hashlib.sha256(partial.read_bytes()).hexdigest(),
        }
        os.replace(partial, path)
    # A format not written now is removed, so the manifest entry describes every file of the
    # segment on disk (a csv-only re-export must not leave an older Parquet file beside it).
    for kind in set(FORMATS) - set(formats):
        (folder / f"{stem}.{kind}").unlink(missing_ok=True)
    return entry


def platform_query(platform: str, segmentation: str = "rfm") -> str:
    if platform not in ad_platforms.PLATFORMS:
        raise ValueError(
            f"no ad platform {platform!r}: known are {', '.join(ad_platforms.PLATFORMS)}"
        )
    return ad_platforms.platform_query(platform, segmentation)


def _entry_key(entry: dict) -> tuple:
    """What a manifest entry is of: one segment, plain or for one ad platform (a manifest written
    before ad-platform files had no `platform`)."""
    return (entry["segmentation"], entry["segment"], entry.get("platform"))


def _still_on_disk(entry: dict, folder: Path) -> dict | None:
    """A kept manifest entry without the files no longer in `folder` (removed by hand); None when
    none is left. The manifest never lists a file that is not there."""
    files = {kind: f for kind, f in entry["files"].items() if (folder / f["file"]).is_file()}
    return {**entry, "files": files} if files else None


def write_segment_exports(
    con: duckdb.DuckDBPyConnection,
    program: Program,
    exports_dir: Path,
    as_of: date,
    formats: tuple[str, ...] = FORMATS,
    hashes: bool = False,
    only: str | None = None,
    platform: str | None = None,
) -> list[dict]:
    """Files per segment under <exports>/<as-of>/ and manifest.json; `only` names one segment,
    `platform` (google, meta) writes hashed-only files for that ad platform instead."""
    if platform is not None:
        platform_query(platform)  # an unknown platform fails before any file is written
    folder = Path(exports_dir) / as_of.isoformat()
    listed = audiences(con, program)
    chosen = listed if only is None else [named_audience(listed, only)]
    stems: dict[str, Audience] = {}
    for audience in chosen:
        first = stems.setdefault(audience.file_stem, audience)
        if first is not audience:
            # The program file refuses such names; this guards any other way a name arrives.
            raise ValueError(
                f"segments {first.segment!r} and {audience.segment!r} would both be exported as "
                f"{audience.file_stem}.*: rename one"
            )
    entries = [
        write_audience(con, audience, folder, formats, hashes, platform) for audience in chosen
    ]
    manifest_path = folder / "manifest.json"
    manifest = {"as_of": as_of.isoformat(), "files": []}
    if (only is not None or platform is not None) and manifest_path.exists():
        # Re-exporting one segment, or exporting for an ad platform, keeps the entries of the
        # other files in the folder (those still on disk).
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        rewritten = {_entry_key(e) for e in entries}
        kept = (_still_on_disk(f, folder) for f in manifest["files"])
        manifest["files"] = [f for f in kept if f is not None and _entry_key(f) not in rewritten]
    manifest["files"] = sorted(
        manifest["files"] + entries,
        key=lambda f: (f["segmentation"], f["segment"], f.get("platform") or ""),
    )
    manifest["written_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    # Written beside and renamed: a reader never finds half a manifest.
    partial = manifest_path.with_name(".manifest.json.partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, manifest_path)
    return entries


def staging_dir(exports_dir: str | Path, run_id: str) -> Path:
    """Where a run writes its exports until it publishes: <exports>/.staging/<run_id>."""
    return Path(exports_dir) / STAGING / run_id


def publish_segment_exports(exports_dir: str | Path, run_id: str) -> list[Path]:
    """Move the run's staged <as-of> folders into <exports>; the folders now published.

    Each folder replaces the published one in a single rename (an exchange on Linux),
    so a reader listing <exports>/<as-of>/ or reading its manifest.json sees either the
    previous run's complete set or this run's, never some files of each. A reader that
    reads the manifest, then the files, while a run publishes may get the newer files:
    the manifest's sha256 sums tell, and reading again gives a consistent set.
    """
    staged = staging_dir(exports_dir, run_id)
    if not staged.is_dir():
        return []
    published = []
    for folder in sorted(p for p in staged.iterdir() if p.is_dir()):
        target = Path(exports_dir) / folder.name
        if not target.exists():
            os.rename(folder, target)
        elif not _exchange(folder, target):
            # No atomic exchange here: the old folder goes first, so for an instant a reader
            # finds no folder at all (never a mix), then the new one.
            os.rename(target, staged / f"{folder.name}.replaced")
            os.rename(folder, target)
        published.append(target)
    shutil.rmtree(staged)  # now holds the replaced folders
    _remove_if_empty(staged.parent)
    return published


def mark_publishing(exports_dir: str | Path, run_id: str, build_identity: list[int]) -> None:
    """Record, just before the warehouse swap, which file the run publishes (inode, size, mtime):
    after a rename the published file still has them, so the next run can tell whether this
    run's warehouse went out and its exports did not."""
    staged = staging_dir(exports_dir, run_id)
    if staged.is_dir():
        marker = staged / PUBLISHING
        partial = marker.with_name(marker.name + ".partial")
        partial.write_text(json.dumps({"build": build_identity}), encoding="utf-8")
        os.replace(partial, marker)


def finish_interrupted_publish(
    exports_dir: str | Path, published_identity: list[int] | None
) -> list[Path]:
    """Put in place the exports of a run whose warehouse is the published one but which died
    before its exports swap; call it holding the run lock, before clean_export_staging.
    Returns the folders published."""
    root = Path(exports_dir) / STAGING
    if published_identity is None or not root.is_dir():
        return []
    finished = []
    for staged in sorted(p for p in root.iterdir() if p.is_dir()):
        marker = staged / PUBLISHING
        if (
            marker.is_file()
            and json.loads(marker.read_text(encoding="utf-8")).get("build") == published_identity
        ):
            finished += publish_segment_exports(exports_dir, staged.name)
    return finished


def clean_export_staging(exports_dir: str | Path) -> list[Path]:
    """Remove the staged exports of runs that did not publish; call it holding the run lock."""
    root = Path(exports_dir) / STAGING
    leftovers = sorted(root.iterdir()) if root.is_dir() else []
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    _remove_if_empty(root)
    return leftovers


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty, or already gone
        pass


def _exchange(new: Path, old: Path) -> bool:
    """Swap two folders atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(old), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(old))
