"""Ingestion of inbox deliveries into the raw layer.

A delivery is one file of the inbox that matches a contract file kind. For each
delivery not ingested before (by content: the same bytes under another name are
a duplicate and add nothing) we:

1. decode it (UTF-8, with or without BOM; otherwise cp1252/Latin-1, never dropped),
2. split it into records, keeping each record's line number and raw text;
   a record with the wrong number of fields, or a line that is not a JSON
   object, is rejected here,
3. type every column as the contract declares, in SQL generated from the
   contract; a record that breaks a rule gets a reason a person understands,
4. append the good records to raw.<source>_<entity> and the rest to
   quality.quarantine, and record the delivery in raw.deliveries.

A problem with the record itself (wrong number of fields, not a JSON object, a
required column missing, unparseable or out of range) quarantines the record. A
problem with an optional personal column (the fields identity compares: a birth date
`1937-12-33`, a phone, an e-mail, a postcode) only empties that field: the record
loads with the field null, so the person keeps their purchases and points, and the
problem goes to quality.field_issues with the file, line, column, reason and the
value, masked. Any other column with a problem (an unknown order status, a negative
optional amount, goodwill points out of range) still quarantines the record: those
carry money and points, which must not be guessed. raw keeps no other copy of the
bad text: the delivered file is the original.

Rows read = rows loaded + rows quarantined, for every delivery; field issues are
on loaded rows and count towards neither the quarantine nor the bad-row threshold.

CSV records are split with Python's csv module (a C parser) because it reports
the line of every record, which DuckDB's reader only does for rejected ones;
everything after splitting is set-based SQL.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from assets.contract import Column, SourceFile, classify, delivery_date, source_files
from assets.privacy import mask_sql

LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A JSON-lines file none of whose first lines is JSON is another format, not bad rows.
SNIFF_LINES = 20
# quality.field_issues keeps at most this much of a bad value (masked when personal).
SHOWN_VALUE_CHARS = 100
FIELD_ISSUE = "struct(column_name varchar, reason varchar, masked_value varchar)"


class DeliveryError(Exception):
    """A whole file cannot be ingested; the message names the file and the problem."""


@dataclass(frozen=True)
class Delivery:
    path: Path
    name: str  # path relative to the inbox, with '/'
    spec: SourceFile
    delivered_on: str  # YYYYMMDD from the file name
    size_bytes: int
    sha256: str


@dataclass
class IngestResult:
    deliveries: list[dict] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)  # inbox files matching no contract pattern

    @property
    def rows_read(self) -> int:
        return sum(d["rows_read"] for d in self.deliveries)

    @property
    def rows_loaded(self) -> int:
        return sum(d["rows_loaded"] for d in self.deliveries)

    @property
    def rows_quarantined(self) -> int:
        return sum(d["rows_quarantined"] for d in self.deliveries)

    @property
    def field_issues(self) -> int:
        return sum(d["field_issues"] for d in self.deliveries)


# ---------------------------------------------------------------- finding deliveries


def find_deliveries(inbox: Path, ignored: list[str] | None = None) -> list[Delivery]:
    """Contract files of the inbox in delivery order: date in the name, then name.

    Names of other files are appended to `ignored`, so a caller can report them.
    """
    if not inbox.is_dir():
        raise DeliveryError(f"{inbox}: inbox folder does not exist")
    found = []
    for path in inbox.rglob("*"):
        if not path.is_file():
            continue
        name = path.relative_to(inbox).as_posix()
        spec = classify(name)
        if spec is None:
            if ignored is not None:
                ignored.append(name)
            continue
        on = delivery_date(name)
        if on is None:
            raise DeliveryError(f"{name}: file name has no _YYYYMMDD delivery date")
        try:
            found.append(Delivery(path, name, spec, on, path.stat().st_size, _sha256(path)))
        except OSError as err:
            raise DeliveryError(f"{name}: cannot be read ({err.strerror})") from None
    return sorted(found, key=lambda d: (d.delivered_on, d.name))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- reading one file


def read_text(delivery: Delivery) -> str:
    try:
        data = delivery.path.read_bytes()
    except OSError as err:
        raise DeliveryError(f"{delivery.name}: cannot be read ({err.strerror})") from None
    if delivery.path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DeliveryError(f"{delivery.name}: not a readable gzip file ({err})") from None
    if b"\x00" in data[:4096]:
        raise DeliveryError(f"{delivery.name}: binary content, not a {delivery.spec.format.upper()} text file")
    return decode(data)


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped); exports from older tills come in cp1252, or Latin-1 at worst."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # decodes every byte: nothing is dropped


def split_csv(delivery: Delivery, text: str) -> tuple[pa.Table, list[dict]]:
    """Records of a CSV delivery as text columns in contract order, plus rejected records."""
    spec = delivery.spec
    lines = LINE_BREAK.split(text)
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DeliveryError(f"{delivery.name}: empty file, expected a header row") from None
    except csv.Error as err:
        raise DeliveryError(f"{delivery.name}: header is not valid CSV ({err})") from None
    _check_header(delivery, header)
    position = {name: header.index(name) for name in spec.column_names if name in header}

    columns: dict[str, list] = {name: [] for name in spec.column_names}
    numbers, raws, rejects = [], [], []
    start = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            rejects.append(_reject(reader.line_num, "\n".join(lines[start : reader.line_num]), f"not valid CSV ({err})"))
            start = reader.line_num
            continue
        first_line, raw = start + 1, "\n".join(lines[start : reader.line_num])
        start = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != len(header):
            rejects.append(_reject(first_line, raw, f"expected {len(header)} fields, found {len(row)}"))
            continue
        for name in spec.column_names:
            columns[name].append(row[position[name]] if name in position else None)
        numbers.append(first_line)
        raws.append(raw)
    return _records_table(columns, numbers, raws), rejects


def split_jsonl(delivery: Delivery, text: str) -> pa.Table:
    """Lines of a JSON-lines delivery; parsing and checking them is done in SQL."""
    numbers, raws = [], []
    for number, line in enumerate(LINE_BREAK.split(text), start=1):
        if line.strip():
            numbers.append(number)
            raws.append(line)
    if raws and not any(_is_json(line) for line in raws[:SNIFF_LINES]):
        raise DeliveryError(
            f"{delivery.name}: not a JSON-lines file (none of its first {min(len(raws), SNIFF_LINES)} lines is JSON)"
        )
    return pa.table({"_line": pa.array(numbers, pa.int64()), "_raw": pa.array(raws, pa.string())})


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _check_header(delivery: Delivery, header: list[str]) -> None:
    missing = [c.name for c in delivery.spec.columns if c.required and c.name not in header]
    if missing:
        raise DeliveryError(
            f"{delivery.name}: missing required column(s) {', '.join(missing)}; "
            f"header is {', '.join(header) or '(empty)'}"
        )


def _records_table(columns: dict[str, list], numbers: list[int], raws: list[str]) -> pa.Table:
    arrays = {name: pa.array(values, pa.string()) for name, values in columns.items()}
    arrays["_line"] = pa.array(numbers, pa.int64())
    arrays["_raw"] = pa.array(raws, pa.string())
    return pa.table(arrays)


def _reject(line: int, raw: str, reason: str) -> dict:
    return {"line": line, "raw": raw, "reason": reason}


# ---------------------------------------------------------------- typing, generated from the contract


def typed_expression(column: Column, text: str) -> str:
    """SQL that turns the text of a column into its contract type, or null when it cannot."""
    value = f"nullif(trim({text}), '')"
    if column.type == "string":
        return value
    if column.type == "integer":
        return f"try_cast({value} as bigint)"
    if column.type == "decimal":
        return f"try_cast({value} as decimal(18, 2))"
    if column.type == "boolean":
        return (
            f"case when lower({value}) in ('true', 't', '1', 'yes', 'y') then true "
            f"when lower({value}) in ('false', 'f', '0', 'no', 'n') then false end"
        )
    if column.type == "enum":
        allowed = ", ".join(_quote(v) for v in column.values)
        return f"case when lower({value}) in ({allowed}) then lower({value}) end"
    if column.type == "date":
        return f"try_strptime({value}, {_quote(column.format)})::date"
    if column.type == "timestamp":
        if column.format == "iso8601":
            # Offsets are honoured and everything is stored as UTC.
            return f"timezone('UTC', try_cast({value} as timestamptz))"
        if column.format == "epoch_ms":
            return f"try(epoch_ms(try_cast({value} as bigint)))"
        return f"try_strptime({value}, {_quote(column.format)})"
    raise ValueError(f"unsupported column type {column.type}")


def problem_expression(column: Column, text: str, typed: str) -> str:
    """SQL giving a reason a person understands when the column breaks the contract, else null."""
    value = f"nullif(trim({text}), '')"
    checks = []
    if column.required:
        checks.append((f"{value} is null", f"missing required {column.name}"))
    if column.type == "enum":
        checks.append((f"{value} is not null and {typed} is null", f"unknown {column.name} (allowed: {', '.join(column.values)})"))
    elif column.type != "string":
        expected = {
            "integer": "a whole number",
            "decimal": "a number",
            "boolean": "true or false",
            "date": f"a date as {column.format}",
            "timestamp": f"a timestamp as {column.format}",
        }[column.type]
        checks.append((f"{value} is not null and {typed} is null", f"{column.name} is not {expected}"))
    if column.min is not None:
        words = "is negative" if column.min == 0 else f"is below {column.min}"
        checks.append((f"{typed} < {column.min}", f"{column.name} {words}"))
    if column.max is not None:
        checks.append((f"{typed} > {column.max}", f"{column.name} is above {column.max}"))
    if not checks:
        return "null"
    cases = " ".join(f"when {condition} then {_quote(reason)}" for condition, reason in checks)
    return f"case {cases} end"


def typed_select(spec: SourceFile, relation: str) -> str:
    """Select every contract column typed, plus `_problem` and `_field_issues`.

    `_problem` is null for a record that loads; otherwise it lists every problem of the
    record, and a record is quarantined for a problem of a required or non-personal
    column (the shape is checked before: CSV field counts in Python, JSON objects below).
    A problem with an optional personal column nulls that column and is listed in
    `_field_issues` (column, reason, masked value).
    """
    checks, row_problems, all_problems, issues, selects = [], [], [], [], []
    for column in spec.columns:
        text = _text_of(spec, column)
        typed = typed_expression(column, text)
        problem = problem_expression(column, text, typed)
        checks.append(f"{typed} as {column.name}")
        if problem == "null":
            selects.append(column.name)
            continue
        checks.append(f"{problem} as _problem_{column.name}")
        all_problems.append(f"_problem_{column.name}")
        if column.required or not column.pii:
            row_problems.append(f"_problem_{column.name}")
            selects.append(column.name)
            continue
        value = f"nullif(trim({text}), '')"
        shown = mask_sql(value) if column.pii else value
        checks.append(
            f"case when _problem_{column.name} is not null then left({shown}, {SHOWN_VALUE_CHARS}) end "
            f"as _value_{column.name}"
        )
        selects.append(f"case when _problem_{column.name} is null then {column.name} end as {column.name}")
        issues.append(
            f"case when _problem_{column.name} is not null then {{'column_name': {_quote(column.name)}, "
            f"'reason': _problem_{column.name}, 'masked_value': _value_{column.name}}} end"
        )
    row_problem = f"concat_ws('; ', {', '.join(row_problems)}) <> ''" if row_problems else "false"
    problem = f"case when {row_problem} then concat_ws('; ', {', '.join(all_problems)}) end"
    if issues:
        field_issues = f"list_filter([{', '.join(issues)}], lambda issue: issue is not null)"
    else:
        field_issues = f"cast([] as {FIELD_ISSUE}[])"
    if spec.format == "jsonl":
        # A line that is not a JSON object has no fields to complain about.
        problem = (
            "case when not coalesce(try(json_valid(_raw)), false) then 'malformed JSON line' "
            f"when try(json_type(_raw)) <> 'OBJECT' then 'JSON line is not an object' else {problem} end"
        )
    return (
        f"with checked as (\n  select {', '.join(checks)}, _line, _raw\n  from {relation}\n)\n"
        f"select {', '.join(selects)}, _line, _raw,\n  {problem} as _problem,\n"
        f"  {field_issues} as _field_issues\nfrom checked"
    )


def _text_of(spec: SourceFile, column: Column) -> str:
    if spec.format == "csv":
        return column.name
    # JSON values arrive as text whatever their JSON type (numbers, booleans).
    path = _quote("$." + column.name)
    return f"try(json_extract_string(_raw, {path}))"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------- the raw layer


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        create table if not exists raw.deliveries (
            delivery_id varchar primary key,  -- sha256 of the file's bytes
            file varchar not null,
            source varchar not null,
            entity varchar not null,
            delivered_on date not null,
            size_bytes bigint not null,
            rows_read bigint not null,
            rows_loaded bigint not null,
            rows_quarantined bigint not null,
            ingested_at timestamp not null,
            status varchar not null            -- loaded | duplicate
        )"""
    )
    con.execute(
        """
        create table if not exists raw.duplicate_deliveries (
            file varchar not null,
            sha256 varchar not null,
            duplicate_of varchar not null,
            seen_at timestamp not null
        )"""
    )
    con.execute(
        """
        create table if not exists quality.quarantine (
            source varchar not null,
            entity varchar not null,
            file varchar not null,
            line bigint not null,
            reason varchar not null,
            raw varchar,
            delivery_id varchar not null,
            quarantined_at timestamp not null
        )"""
    )
    con.execute(
        """
        create table if not exists quality.field_issues (
            source varchar not null,
            entity varchar not null,
            file varchar not null,
            line bigint not null,
            column_name varchar not null,
            reason varchar not null,
            masked_value varchar,
            delivery_id varchar not null,
            found_at timestamp not null
        )"""
    )
    for spec in source_files():
        columns = ", ".join(f"{c.name} {_sql_type(c)}" for c in spec.columns)
        con.execute(
            f"create table if not exists raw.{spec.table} ({columns}, "
            "_delivery_id varchar not null, _file varchar not null, _delivered_on date not null, _line bigint not null)"
        )


def _sql_type(column: Column) -> str:
    return {
        "string": "varchar",
        "enum": "varchar",
        "integer": "bigint",
        "decimal": "decimal(18, 2)",
        "boolean": "boolean",
        "date": "date",
        "timestamp": "timestamp",
    }[column.type]


def ingest_inbox(con: duckdb.DuckDBPyConnection, inbox: Path, max_bad_share: float = 0.05) -> IngestResult:
    """Ingest every delivery of the inbox not seen before. Raises DeliveryError naming the file."""
    create_raw_tables(con)
    seen = dict(con.execute("select delivery_id, file from raw.deliveries").fetchall())
    result = IngestResult()
    for delivery in find_deliveries(inbox, result.ignored_files):
        if delivery.sha256 in seen:
            if seen[delivery.sha256] != delivery.name:
                _record_duplicate(con, delivery, seen[delivery.sha256])
            continue
        summary = ingest_delivery(con, delivery)
        bad_share = summary["rows_quarantined"] / summary["rows_read"] if summary["rows_read"] else 0.0
        if bad_share > max_bad_share:
            raise DeliveryError(
                f"{delivery.name}: {summary['rows_quarantined']} of {summary['rows_read']} rows "
                f"({bad_share:.1%}) break the contract, above the {max_bad_share:.0%} threshold; "
                "see quality.quarantine for the reasons"
            )
        seen[delivery.sha256] = delivery.name
        result.deliveries.append(summary)
    return result


def _record_duplicate(con: duckdb.DuckDBPyConnection, delivery: Delivery, original: str) -> None:
    already = con.execute(
        "select count(*) from raw.duplicate_deliveries where file = ? and sha256 = ?", [delivery.name, delivery.sha256]
    ).fetchall()[0][0]
    if not already:
        con.execute(
            "insert into raw.duplicate_deliveries values (?, ?, ?, ?)",
            [delivery.name, delivery.sha256, original, _now()],
        )


def ingest_delivery(con: duckdb.DuckDBPyConnection, delivery: Delivery) -> dict:
    spec = delivery.spec
    text = read_text(delivery)
    if spec.format == "csv":
        records, rejects = split_csv(delivery, text)
    else:
        records, rejects = split_jsonl(delivery, text), []
    now = _now()
    delivered_on = datetime.strptime(delivery.delivered_on, "%Y%m%d").date()

    con.register("incoming_records", records)
    try:
        con.execute(f"create or replace temp table incoming as {typed_select(spec, 'incoming_records')}")
    finally:
        con.unregister("incoming_records")
    columns = ", ".join(spec.column_names)
    con.execute(
        f"insert into raw.{spec.table} select {columns}, ?, ?, ?, _line from incoming where _problem is null order by _line",
        [delivery.sha256, delivery.name, delivered_on],
    )
    con.execute(
        "insert into quality.quarantine select ?, ?, ?, _line, _problem, _raw, ?, ? from incoming where _problem is not null",
        [spec.source, spec.entity, delivery.name, delivery.sha256, now],
    )
    con.execute(
        """
        insert into quality.field_issues
        select ?, ?, ?, _line, issue.column_name, issue.reason, issue.masked_value, ?, ?
        from (
            select _line, unnest(_field_issues) as issue, generate_subscripts(_field_issues, 1) as position
            from incoming
            where _problem is null
        )
        order by _line, position""",
        [spec.source, spec.entity, delivery.name, delivery.sha256, now],
    )
    if rejects:
        con.executemany(
            "insert into quality.quarantine values (?, ?, ?, ?, ?, ?, ?, ?)",
            [[spec.source, spec.entity, delivery.name, r["line"], r["reason"], r["raw"], delivery.sha256, now] for r in rejects],
        )
    loaded, typed_bad, field_issues = con.execute(
        "select count(*) filter (where _problem is null), count(*) filter (where _problem is not null), "
        "coalesce(sum(len(_field_issues)) filter (where _problem is null), 0) from incoming"
    ).fetchall()[0]
    con.execute("drop table incoming")
    summary = {
        "delivery_id": delivery.sha256,
        "file": delivery.name,
        "source": spec.source,
        "entity": spec.entity,
        "delivered_on": delivered_on,
        "size_bytes": delivery.size_bytes,
        "rows_read": loaded + typed_bad + len(rejects),
        "rows_loaded": loaded,
        "rows_quarantined": typed_bad + len(rejects),
        "ingested_at": now,
        "status": "loaded",
    }
    names = list(summary)
    con.execute(
        f"insert into raw.deliveries ({', '.join(names)}) values ({', '.join('?' for _ in names)})",
        list(summary.values()),
    )
    summary["field_issues"] = int(field_issues)  # in quality.field_issues, not in the manifest
    return summary


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
