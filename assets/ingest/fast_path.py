"""The fast path of ingestion: DuckDB's own CSV reader splits a delivery into lines.

The exact path (deliveries.py) reads a delivery as a Python stream and splits it with
Python's csv module: it handles everything a sender can deliver, at about 100k rows a
second. Here DuckDB reads the file itself, on every core, as one text column holding
each whole line (NUL as the delimiter, no quote, no escape), and WITH ORDINALITY numbers
the lines in file order (it is `row_number() over ()`, which follows the file's order).
CSV fields are then split in SQL: with `string_split` for a line without a quote, at its
quotes and then its commas for one with quoted fields (`"Flat 4, 12 High St"`), with a
regular expression for the rare line with a quote inside an unquoted field. JSON lines are
parsed in typing. Records go to typing (deliveries.typed_select) as a query over the
lines, never as Python objects.

That is only right when every record is one line, so the fast path checks the file first
and declines (read_records returns None and leaves nothing behind, and the exact path
reads the file) whenever its result could differ from the exact path's:

- the file is not the one identified: its inode, size, modification or change time differ
  from when find_deliveries hashed it (the exact path hashes it again, and says so),
- DuckDB cannot read it as lines of UTF-8: not UTF-8 (the exact path decodes cp1252 or
  Latin-1), a NUL byte, line breaks of more than one kind, a line over 2 MB,
- a line holds a carriage return (a line break to the exact path), or is longer than the
  max_line_kb limit (the exact path names the line in its error),
- CSV: a line with a quote that is not whole fields, each `"..."` (with `""` for a
  quote inside) or not starting with a quote, separated by commas: a quoted field that goes
  on on the next line, or one Python's csv module reads leniently (`"a"b`),
- CSV: a line longer than the csv module's field size limit (the exact path quarantines it).

Everything else is as on the exact path: a BOM is dropped (DuckDB drops it), blank lines
are skipped but counted in line numbers, the header is the first record that is not blank
(parsed by the csv module and checked by the same function), a record whose number of
fields differs from the header's is rejected with the same reason, a JSON-lines file whose
first 20 lines hold no JSON fails the same way. tests/test_deliveries.py compares both paths
on files made to hit each of these cases.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb

from assets.ingest import deliveries as exact

# DuckDB's default longest line; longer lines are rare and take the exact path.
LONGEST_LINE_BYTES = 2 << 20
# What Python's str.strip() strips: a record of only these is blank on the exact path.
WHITESPACE = "".join(ch for ch in map(chr, range(sys.maxunicode + 1)) if ch.isspace())
# One field as Python's csv module reads it when it is whole: quoted, with "" for a quote
# inside, or not starting with a quote (then a quote in it is text), or empty.
FIELD = '"(?:[^"]|"")*"|[^",][^,]*|'
WHOLE_FIELDS = f"(?:{FIELD})(?:,(?:{FIELD}))*"
# Whole fields with no quote outside quoted fields (`"a,b",c`, not `a"b,c`): the quotes of
# such a line split it into pieces alternately outside and inside quoted fields.
QUOTED_OR_PLAIN = '"(?:[^"]|"")*"|[^",]*'
ONLY_QUOTED_FIELDS_QUOTED = f"(?:{QUOTED_OR_PLAIN})(?:,(?:{QUOTED_OR_PLAIN}))*"
# The first lines of a file (its header, the first JSON lines) are fetched this many at a time.
WINDOW_LINES = 1000


def read_records(
    con: duckdb.DuckDBPyConnection, delivery: exact.Delivery, limits: exact.Limits
) -> str | None:
    """Read the delivery with DuckDB; None when only the exact path can.

    Returns a query of the records for typed_select: `_line`, `_raw`, for CSV the text of
    each contract column, and `_reject`, the reason a record was rejected while splitting
    (the wrong number of fields), else null. The query reads temp table incoming_lines,
    which the caller drops once done (drop_lines). A problem with the whole file raises
    DeliveryError as the exact path would.
    """
    if not delivery.identity or delivery.content_bytes > limits.file_bytes:
        return None
    try:
        if not _load_lines(con, delivery):
            return None
        if not _lines_are_records(con, delivery, limits):
            drop_lines(con)
            return None
        if delivery.spec.format == "csv":
            return _csv_records(con, delivery)
        return _jsonl_records(con, delivery)
    except BaseException:
        drop_lines(con)
        raise


def drop_lines(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("drop table if exists incoming_lines")


def _load_lines(con: duckdb.DuckDBPyConnection, delivery: exact.Delivery) -> bool:
    """Every line of the file into incoming_lines (_line, _raw); False when DuckDB cannot
    read it as lines, or the file is not the one that was identified."""
    with exact.open_in_inbox(delivery.inbox, delivery.name) as handle:
        if exact.identity_of(os.fstat(handle.fileno())) != delivery.identity:
            return False
        # DuckDB opens the file this process already opened, through its descriptor: the
        # name in the inbox, which a link could replace meanwhile, is not looked up again.
        through = Path(f"/proc/self/fd/{handle.fileno()}")
        if not through.exists():
            return False  # no /proc (not Linux): the exact path reads it
        compression = "gzip" if delivery.name.endswith(".gz") else "none"
        try:
            con.execute(
                "create or replace temp table incoming_lines as "
                "select ordinality as _line, coalesce(line, '') as _raw "
                f"from read_csv('{through}', columns = {{'line': 'varchar'}}, header = false, "
                "auto_detect = false, delim = chr(0), quote = '', escape = '', strict_mode = true, "
                f"compression = '{compression}', max_line_size = {LONGEST_LINE_BYTES}) "
                "with ordinality"
            )
        except duckdb.Error:
            # Not UTF-8, a NUL, mixed line breaks, a line too long: DuckDB's message may
            # quote the line, so it is not kept; the exact path gives its own.
            drop_lines(con)
            return False
        if exact.identity_of(os.fstat(handle.fileno())) != delivery.identity:
            drop_lines(con)
            return False
    return True


def _lines_are_records(
    con: duckdb.DuckDBPyConnection, delivery: exact.Delivery, limits: exact.Limits
) -> bool:
    """Whether every line reads on its own as the exact path reads it in the file."""
    longest = limits.line_bytes
    quotes_not_whole = "false"
    if delivery.spec.format == "csv":
        longest = min(longest, csv.field_size_limit())
        # A case, so the regular expression only runs on lines with a quote: `and` ran it on
        # every line (0.2 CPU s a million lines).
        quotes_not_whole = (
            f"""case when contains(_raw, '"') then not regexp_full_match(_raw, {_quote(WHOLE_FIELDS)}) """
            "else false end"
        )
    # 3 bytes to spare: the exact path measures the first line with its BOM, which DuckDB dropped.
    ((longest_line, with_cr, not_whole),) = con.execute(
        f"""
        select
            coalesce(max(strlen(_raw)), 0),
            coalesce(bool_or(contains(_raw, chr(13))), false),
            count(*) filter (where {quotes_not_whole})
        from incoming_lines"""
    ).fetchall()
    return longest_line + 3 <= longest and not with_cr and not_whole == 0


def _fields(raw: str = "_raw") -> str:
    """SQL: the fields of a CSV line of whole fields (WHOLE_FIELDS), unquoted.

    A line without a quote is split at its commas. One whose quotes are all in quoted
    fields (most: `"Flat 4, 12 High St"`) is split at its quotes first: every second piece
    is inside a quoted field, and its commas are hidden (as NUL, which no line the fast path
    reads holds) before splitting at the commas left. Only the rest (`a"b` is a field too)
    take the regular expression, which costs three times as much.
    """
    unquoted = (
        """case when starts_with(field, '"') then replace(field[2:-2], '""', '"') else field end"""
    )
    by_expression = (
        f"list_transform(regexp_extract_all({raw} || ',', {_quote('(' + FIELD + '),')}, 1), "
        f"lambda field: {unquoted})"
    )
    hidden = (
        f"""array_to_string(list_transform(string_split({raw}, '"'), """
        "lambda piece, i: case when i % 2 = 0 then replace(piece, ',', chr(0)) else piece end), "
        """'"')"""
    )
    by_quotes = (
        f"list_transform(string_split({hidden}, ','), "
        f"lambda field: replace({unquoted}, chr(0), ','))"
    )
    return (
        f"""case when not contains({raw}, '"') then string_split({raw}, ',') """
        f"when regexp_full_match({raw}, {_quote(ONLY_QUOTED_FIELDS_QUOTED)}) then {by_quotes} "
        f"else {by_expression} end"
    )


def _csv_records(con: duckdb.DuckDBPyConnection, delivery: exact.Delivery) -> str:
    spec = delivery.spec
    found = _header(con)
    if found is None:  # nothing but blank lines: a delivery of zero rows
        columns = "".join(f", null::varchar as {name}" for name in spec.column_names)
        return (
            f"(select null::bigint as _line, null::varchar as _raw{columns}, "
            "null::varchar as _reject where false)"
        )
    header_line, header = found
    exact.check_header(delivery, header, header_line)
    width = len(header)
    # A contract column missing from the header (an optional one) is null.
    picked = ", ".join(
        f"_fields[{header.index(name) + 1}] as {name}"
        if name in header
        else f"null::varchar as {name}"
        for name in spec.column_names
    )
    blank = f"case when len(_fields) = 1 then {_blank('_fields[1]')} else false end"
    return (
        f"(select _line, _raw, {picked}, case when len(_fields) <> {width} "
        f"then 'expected {width} fields, found ' || len(_fields) end as _reject "
        f"from (select _line, _raw, {_fields()} as _fields from incoming_lines "
        f"where _line > {header_line}) where not ({blank}))"
    )


def _header(con: duckdb.DuckDBPyConnection) -> tuple[int, list[str]] | None:
    """The first record that is not blank: its line and its fields, stripped (as split_csv)."""
    for line, raw in _lines_from_the_start(con):
        # A line of whole fields: the csv module reads it alone as it reads it in the file.
        row = next(csv.reader([raw], strict=False), [])
        if not exact.is_blank(row):
            return line, [name.strip() for name in row]
    return None


def _jsonl_records(con: duckdb.DuckDBPyConnection, delivery: exact.Delivery) -> str:
    # The first lines that are not blank, tried as JSON as split_jsonl tries them.
    first: list[str] = []
    for _, raw in _lines_from_the_start(con):
        if raw.strip():
            first.append(raw)
            if len(first) == exact.SNIFF_LINES:
                break
    if first:
        exact.check_json(delivery, first)
    # A line that is not a JSON object is quarantined by typed_select, not rejected here.
    return (
        "(select _line, _raw, null::varchar as _reject from incoming_lines "
        f"where not {_blank('_raw')})"
    )


def _lines_from_the_start(con: duckdb.DuckDBPyConnection) -> Iterator[tuple[int, str]]:
    """(line, text) in order, fetched a window at a time: the first few are usually enough."""
    start = 0
    while True:
        lines = con.execute(
            "select _line, _raw from incoming_lines where _line > ? and _line <= ? order by _line",
            [start, start + WINDOW_LINES],
        ).fetchall()
        if not lines:
            return
        yield from lines
        start += WINDOW_LINES


def _blank(text: str) -> str:
    """SQL: whether a text is only whitespace, as str.strip() sees it. trim() with that set of
    characters is slow (1.6 CPU seconds a million lines): it only runs on a text whose
    first character is whitespace, as a blank one's is."""
    whitespace = _quote(WHITESPACE)
    return f"(case when contains({whitespace}, left({text}, 1)) then trim({text}, {whitespace}) = '' else false end)"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
