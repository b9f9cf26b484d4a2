"""Ingestion of inbox deliveries into the raw layer.

A delivery is one regular file of the inbox that matches a contract file kind. For each
delivery not ingested before (by content: the same rows under another name, gzipped
or not, are a duplicate and add nothing) we:

1. read it as a stream, decompressing a .gz, within two limits (the decompressed size
   and the longest line), so a gzip bomb or a line with no end stops at the limit,
2. decode it (UTF-8, with or without BOM; otherwise cp1252/Latin-1, never dropped),
3. split it into records, keeping each record's line number and raw text;
   a record with the wrong number of fields, or a line that is not a JSON
   object, is rejected here,
4. type every column as the contract declares, in SQL generated from the
   contract; a record that breaks a rule gets a reason a person understands,
5. append the good records to raw.<source>_<entity> and the rest to
   quality.quarantine, and record the delivery in raw.deliveries.

A problem with the record itself (wrong number of fields, not a JSON object, a JSON
object or array where the contract has one value, a contract key given twice, a
required column missing, unparseable or out of range) quarantines the record. A
problem with an optional personal column (the fields identity compares: a birth date
`1937-12-33`, a phone, an e-mail, a postcode) only empties that field: the record
loads with the field null, so the person keeps their purchases and points, and the
problem goes to quality.field_issues with the file, line, column, reason and the
value, masked. Any other column with a problem (an unknown order status, a negative
optional amount, goodwill points out of range) still quarantines the record: those
carry money and points, which must not be guessed. raw keeps no other copy of the
bad text: the delivered file is the original.

Rows read = rows loaded + rows quarantined + rows suppressed (rows of a person who asked to
be forgotten, dropped unkept: assets/ingest/suppression.py), for every delivery; field issues are
on loaded rows and count towards neither the quarantine nor the bad-row threshold.
A file with no rows (0 bytes, blank lines only, or a CSV header alone) is a delivery
of zero rows: a daily export on a day with nothing new.

Whoever can write to the inbox is not trusted with more than the rows of their files:
a symbolic link (which could point at any file the pipeline can read) or any other
entry that is not a folder or a regular file fails the run unread, and messages name a
file (escaped by `shown`, so a name cannot forge log lines) and a line or column, never
the text of a row: errors go to logs and Dagster events, which are not personal data.

Steps 1 to 3 have two paths, which give the same records (tests/test_deliveries.py
compares them). The fast path (fast_path.py) lets DuckDB's own CSV reader read the file
in parallel as one text column per line, numbered in file order (WITH ORDINALITY), and
splits CSV fields in SQL; it runs at DuckDB's reading speed, and reads the files an
exporter normally writes. It declines whenever a line is not a whole record or could be
read otherwise here: a quoted field going on on the next line, a file that is not UTF-8,
a NUL, a bare carriage return, a line over the limits, a file changed since it was hashed.
Then the exact path reads the file as a Python stream: Python's csv module (a C parser)
splits it and reports the first line of every record, records go to DuckDB in batches.
Either way a file's records end up in one query, and everything from step 4 on is
set-based SQL: typed once (typed_select), then appended.
"""

from __future__ import annotations

import csv
import errno
import gzip
import hashlib
import io
import json
import os
import stat
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO

import duckdb
import pyarrow as pa

from assets.ingest.contract import Column, SourceFile, classify, delivery_date, source_files
from assets.ingest.suppression import SuppressionError, suppressed_sql, suppression_active
from assets.shared.catalog import comment_on_table
from assets.shared.privacy import mask_sql

# A JSON-lines file none of whose first lines is JSON is another format, not bad rows.
SNIFF_LINES = 20
# A NUL byte in this much of the start of a file makes it binary, not text.
SNIFF_BYTES = 4096
# quality.field_issues keeps at most this much of a bad value (masked when personal).
SHOWN_VALUE_CHARS = 100
FIELD_ISSUE = "struct(column_name varchar, reason varchar, masked_value varchar)"
# Files are read this much at a time, and records reach DuckDB in batches of at most
# this many rows or characters: memory holds a batch, whatever the size of the file.
CHUNK_BYTES = 1 << 20
BATCH_ROWS = 50_000
BATCH_CHARS = 64 << 20
# Tried in order for a whole file; Latin-1 decodes every byte, so nothing is dropped.
ENCODINGS = ("utf-8", "cp1252", "latin-1")


class DeliveryError(Exception):
    """A whole file cannot be ingested; the message names the file and the problem."""


@dataclass(frozen=True)
class Limits:
    """How large a delivery may be once decompressed, and its longest line.

    The defaults are those of the settings max_file_mb and max_line_kb (assets/shared/defaults.py).
    """

    max_file_mb: int = 2048
    max_line_kb: int = 1024

    @property
    def file_bytes(self) -> int:
        return self.max_file_mb << 20

    @property
    def line_bytes(self) -> int:
        return self.max_line_kb << 10


@dataclass(frozen=True)
class Delivery:
    inbox: Path
    name: str  # path relative to the inbox, with '/'
    spec: SourceFile
    delivered_on: str  # YYYYMMDD from the file name
    size_bytes: int  # of the file as delivered (compressed, for a .gz)
    sha256: str  # of the content, decompressed: the delivery's id
    file_sha256: str = ""  # of the file's bytes; the id of a .gz ingested before content hashing
    content_bytes: int = 0  # of the content, decompressed
    # The file's device, inode, size, modification and change times when it was hashed: the
    # fast path (fast_path.py) reads it only while they are the same.
    identity: tuple[int, ...] = ()

    @property
    def path(self) -> Path:
        return self.inbox / self.name


@dataclass
class IngestResult:
    deliveries: list[dict] = field(default_factory=list)
    ignored_files: list[str] = field(
        default_factory=list
    )  # inbox files matching no contract pattern

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
    def rows_suppressed(self) -> int:
        return sum(d["rows_suppressed"] for d in self.deliveries)

    @property
    def field_issues(self) -> int:
        return sum(d["field_issues"] for d in self.deliveries)


def shown(name: str | os.PathLike) -> str:
    """A file name as messages show it: control and invisible characters escaped.

    A name is chosen by whoever delivers the file; printed raw, an escape sequence or a
    newline in it would rewrite the terminal or forge a log line. Backslashes are doubled
    so an escape cannot be faked either; a byte that is not UTF-8 shows as \\xNN.
    """
    text = os.fspath(name)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch.isprintable():
        return ch
    if "\udc80" <= ch <= "\udcff":  # an undecodable byte of the name (os.fsdecode)
        return f"\\x{ord(ch) - 0xDC00:02x}"
    return ch.encode("unicode_escape").decode("ascii")


def _error(name: str, problem: str) -> DeliveryError:
    return DeliveryError(f"{shown(name)}: {problem}")


# ---------------------------------------------------------------- finding deliveries


def find_deliveries(
    inbox: Path,
    ignored: list[str] | None = None,
    limits: Limits = Limits(),
    problems: list[str] | None = None,
) -> list[Delivery]:
    """Contract files of the inbox in delivery order: date in the name, then name.

    Every contract file is read once here, as a stream within `limits`, for its id (the
    sha256 of its content). Names of other files are appended to `ignored`, so a caller
    can report them. Files that cannot be read are named in one DeliveryError, a line each,
    or with `problems` appended to it and left out.
    """
    if not inbox.is_dir():
        raise _error(str(inbox), "inbox folder does not exist")
    found, refused = [], []
    for name in _inbox_files(inbox, refused):
        spec = classify(name)
        if spec is None:
            if ignored is not None:
                ignored.append(name)
            continue
        try:
            found.append(_delivery(inbox, name, spec, limits))
        except DeliveryError as err:
            refused.append(str(err))
    if problems is not None:
        problems.extend(refused)
    elif refused:
        # Every refused file at once, a line each: fixing them one run at a time is slow.
        raise DeliveryError("\n".join(refused))
    return sorted(found, key=lambda d: (d.delivered_on, d.name))


def _delivery(inbox: Path, name: str, spec: SourceFile, limits: Limits) -> Delivery:
    """One contract file, read once as a stream for its id."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # The name is stored in the warehouse, whose text is UTF-8.
        raise _error(name, "file name is not valid UTF-8; rename it") from None
    on = delivery_date(name)
    if on is None:
        raise _error(name, "file name has no _YYYYMMDD delivery date")
    # A .gz is identified by its content, so the same rows compressed or not are one
    # delivery; the hash of its bytes is kept for warehouses that identified it by them.
    content, file_bytes = hashlib.sha256(), hashlib.sha256() if name.endswith(".gz") else None
    content_bytes = 0
    with open_in_inbox(inbox, name) as handle:
        # Taken before reading: a write while the file is hashed changes it.
        identity = identity_of(os.fstat(handle.fileno()))
        for chunk in _content(handle, name, spec.format, limits, file_bytes):
            content.update(chunk)
            content_bytes += len(chunk)
        size = os.fstat(handle.fileno()).st_size
    file_sha256 = (file_bytes or content).hexdigest()
    return Delivery(
        inbox, name, spec, on, size, content.hexdigest(), file_sha256, content_bytes, identity
    )


def identity_of(file_stat: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is written to or replaced (a change time cannot be set back)."""
    return (
        file_stat.st_dev,
        file_stat.st_ino,
        file_stat.st_size,
        file_stat.st_mtime_ns,
        file_stat.st_ctime_ns,
    )


def _inbox_files(inbox: Path, problems: list[str]) -> Iterator[str]:
    """Regular files under the inbox, as paths relative to it, without following any link.

    A link could point anywhere the pipeline can read (/etc/passwd, another team's
    exports), and a FIFO or device would block or never end: both fail the run, unread
    (appended to `problems`, so every one of them is reported at once).
    """
    folders = [""]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(inbox / folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as err:
            problems.append(
                str(_error(folder or str(inbox), f"folder cannot be listed ({err.strerror})"))
            )
            continue
        inner = []
        for entry in entries:
            name = f"{folder}/{entry.name}" if folder else entry.name
            if entry.is_symlink():
                problems.append(
                    str(
                        _error(
                            name,
                            "a symbolic link; links are never followed, so it was not read (deliver the file itself)",
                        )
                    )
                )
            elif entry.is_dir(follow_symlinks=False):
                inner.append(name)
            elif entry.is_file(follow_symlinks=False):
                yield name
            else:
                problems.append(
                    str(_error(name, "not a regular file (a FIFO, socket or device); not read"))
                )
        folders.extend(reversed(inner))  # folders in name order, each before the next


def open_in_inbox(inbox: Path, name: str) -> BinaryIO:
    """Open a file of the inbox for reading, following no symbolic link on the way.

    The inbox was listed without following links, but one could be put in place before the
    file is opened: each folder of the path is opened from the one before with O_NOFOLLOW,
    and so is the file, so a link anywhere in the path fails here instead of being read.
    """
    *folders, file_name = name.split("/")
    try:
        folder = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in folders:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
                os.close(folder)
                folder = inner
            # O_NONBLOCK: a FIFO put in place of the file must not wait for a writer.
            descriptor = os.open(
                file_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder
            )
        finally:
            os.close(folder)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _error(
                name,
                "a symbolic link, or in a linked folder; links are never followed, so it was not read",
            ) from None
        raise _error(name, f"cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise _error(name, "not a regular file (a FIFO, socket or device); not read")
    return os.fdopen(descriptor, "rb")


# ---------------------------------------------------------------- reading one file, as a stream


class _HashedFile(io.RawIOBase):
    """A file whose bytes are hashed as they are read (gzip reads the file through it)."""

    def __init__(self, handle: BinaryIO, digest) -> None:
        self._handle, self._digest = handle, digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self._handle.readinto(buffer)
        if count:
            self._digest.update(memoryview(buffer)[:count])
        return count


def _content(
    handle: BinaryIO, name: str, file_format: str, limits: Limits, file_digest=None
) -> Iterator[bytes]:
    """The file's content in chunks, decompressed when it is a .gz; `file_digest`, if any, gets its bytes.

    The size is counted as chunks arrive and the read stops as soon as it passes the limit,
    so a small .gz that expands to gigabytes costs one chunk of memory, not gigabytes.
    """
    source = handle if file_digest is None else _HashedFile(handle, file_digest)
    stream: BinaryIO = gzip.GzipFile(fileobj=source, mode="rb") if name.endswith(".gz") else source  # type: ignore[assignment]
    total, head = 0, b""
    while True:
        try:
            chunk = stream.read(CHUNK_BYTES)
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            # Never the library's message: "Not a gzipped file (b'A1')" shows the first bytes.
            raise _error(name, f"not a readable gzip file ({_gzip_problem(err)})") from None
        except OSError as err:
            raise _error(name, f"cannot be read ({err.strerror})") from None
        if not chunk:
            return
        total += len(chunk)
        if total > limits.file_bytes:
            decompressed = " once decompressed" if name.endswith(".gz") else ""
            raise _error(
                name,
                f"larger than {limits.max_file_mb} MB{decompressed}, the limit (setting max_file_mb); not read further",
            )
        if len(head) < SNIFF_BYTES:
            head += chunk[: SNIFF_BYTES - len(head)]
            if b"\x00" in head:
                raise _error(name, f"binary content, not a {file_format.upper()} text file")
        yield chunk


def _gzip_problem(err: Exception) -> str:
    if isinstance(err, EOFError):
        return "truncated"
    if isinstance(err, gzip.BadGzipFile) and str(err).startswith("Not a gzipped file"):
        return "not gzip data"
    return "corrupt data"


def _lines(chunks: Iterable[bytes], name: str, limits: Limits) -> Iterator[bytes]:
    """Lines of a byte stream, each with its line break (\r\n, \r or \n); the last may have none.

    A line longer than the limit fails the file as soon as that many bytes are read
    without a line break: memory never holds more than the limit and a chunk.
    """
    rest, number, limit = b"", 0, limits.line_bytes
    for chunk in chunks:
        # bytes.splitlines breaks at exactly \r\n, \r and \n (str.splitlines knows more).
        lines = (rest + chunk).splitlines(keepends=True)
        # The last piece may go on in the next chunk: no line break yet, or a \r that may
        # be the first half of a \r\n.
        rest = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        for line in lines:
            number += 1
            if len(line) > limit and len(line.rstrip(b"\r\n")) > limit:
                raise _line_too_long(name, number, limits)
            yield line
        if len(rest) > limit and len(rest.rstrip(b"\r")) > limit:
            raise _line_too_long(name, number + 1, limits)
    if rest:
        yield rest


def _line_too_long(name: str, number: int, limits: Limits) -> DeliveryError:
    return _error(
        name,
        f"line {number} is longer than {limits.max_line_kb} KB, the limit (setting max_line_kb); not read further",
    )


def read_lines(delivery: Delivery, limits: Limits, encoding: str) -> Iterator[str]:
    """The delivery's lines decoded, each with its line break as delivered.

    The content is hashed again as it is read: a file rewritten since it was found (and
    identified) fails instead of loading rows under another file's id. A line that does
    not decode raises UnicodeDecodeError, for the caller to start over in the next encoding.
    """
    digest = hashlib.sha256()
    first = "utf-8-sig" if encoding == "utf-8" else encoding  # a BOM is dropped
    with open_in_inbox(delivery.inbox, delivery.name) as handle:
        chunks = _content(handle, delivery.name, delivery.spec.format, limits)
        for number, line in enumerate(_lines(_hashed(chunks, digest), delivery.name, limits)):
            yield line.decode(encoding if number else first)
    if digest.hexdigest() != delivery.sha256:
        raise _error(
            delivery.name, "changed while it was being read; run again once it is complete"
        )


def _hashed(chunks: Iterable[bytes], digest) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


class _Records:
    """Records of one delivery on their way to DuckDB, in batches.

    incoming_records holds the line, the raw text and the text of each contract column
    (CSV; none for JSON lines, parsed in SQL); incoming_rejects the records rejected while
    splitting, with their reason.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, columns: list[str]) -> None:
        self.con, self.columns = con, columns
        text_columns = "".join(f", {name} varchar" for name in columns)
        con.execute(
            f"create or replace temp table incoming_records (_line bigint, _raw varchar{text_columns})"
        )
        con.execute(
            "create or replace temp table incoming_rejects (_line bigint, _raw varchar, _reason varchar)"
        )
        self._clear()

    def _clear(self) -> None:
        self.rows: list[tuple] = []  # (line, raw, *column texts)
        self.rejects: list[tuple] = []  # (line, raw, reason)
        self.chars = 0

    def add(self, record: tuple) -> None:
        """One record: (line, raw text, then the text of each column, for CSV)."""
        self.rows.append(record)
        self.chars += len(record[1])
        if len(self.rows) >= BATCH_ROWS or self.chars >= BATCH_CHARS:
            self.flush()

    def reject(self, line: int, raw: str, reason: str) -> None:
        self.rejects.append((line, raw, reason))
        self.chars += len(raw)
        if len(self.rejects) >= BATCH_ROWS or self.chars >= BATCH_CHARS:
            self.flush()

    def flush(self) -> None:
        records = _columns(self.rows, ["_line", "_raw", *self.columns])
        rejects = _columns(self.rejects, ["_line", "_raw", "_reason"])
        for table, batch in (("incoming_records", records), ("incoming_rejects", rejects)):
            if batch.num_rows:
                self.con.register("incoming_batch", batch)
                try:
                    self.con.execute(f"insert into {table} select * from incoming_batch")
                finally:
                    self.con.unregister("incoming_batch")
        self._clear()


def _columns(rows: list[tuple], names: list[str]) -> pa.Table:
    """Rows of (line, text, text...) as an Arrow table with the given column names."""
    columns = list(zip(*rows)) if rows else [()] * len(names)
    return pa.table(
        [
            pa.array(values, pa.int64() if i == 0 else pa.string())
            for i, values in enumerate(columns)
        ],
        names=names,
    )


def split_csv(delivery: Delivery, lines: Iterable[str], records: _Records) -> None:
    """Records of a CSV delivery as text columns in contract order, and rejected records."""
    spec = delivery.spec
    consumed: list[str] = []  # lines of the record being read, for its raw text

    def remembered() -> Iterator[str]:
        for line in lines:
            consumed.append(line)
            yield line

    def raw() -> str:
        if len(consumed) == 1:
            text = consumed[0].rstrip("\r\n")
        else:
            text = "\n".join(line.rstrip("\r\n") for line in consumed)
        consumed.clear()
        return text

    reader = csv.reader(remembered(), strict=False)
    header = None
    while header is None:
        try:
            row = next(reader)
        except StopIteration:
            return  # no header, no rows: a delivery of zero rows
        except csv.Error as err:
            raise _error(
                delivery.name, f"the header (line {reader.line_num}) is not valid CSV ({err})"
            ) from None
        if is_blank(row):
            consumed.clear()
            continue
        header = [h.strip() for h in row]
        header_line = reader.line_num
        consumed.clear()
    check_header(delivery, header, header_line)
    # Where each contract column is in a record; one missing from the header (an optional
    # column) reads the None appended to every record, at len(header).
    where = [header.index(name) if name in header else len(header) for name in spec.column_names]
    pick = itemgetter(*where) if len(where) > 1 else (lambda row: (row[where[0]],))

    start = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            # The csv module's messages name the problem, never the text.
            records.reject(start + 1, raw(), f"not valid CSV ({err})")
            start = reader.line_num
            continue
        first_line, text = start + 1, raw()
        start = reader.line_num
        if is_blank(row):
            continue
        if len(row) != len(header):
            records.reject(first_line, text, f"expected {len(header)} fields, found {len(row)}")
            continue
        row.append(None)
        records.add((first_line, text, *pick(row)))


def is_blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def split_jsonl(delivery: Delivery, lines: Iterable[str], records: _Records) -> None:
    """Lines of a JSON-lines delivery; parsing and checking them is done in SQL."""
    first: list[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        if len(first) < SNIFF_LINES:
            first.append(text)
            if len(first) == SNIFF_LINES:
                check_json(delivery, first)
        records.add((number, text))
    if 0 < len(first) < SNIFF_LINES:
        check_json(delivery, first)


def check_json(delivery: Delivery, first: list[str]) -> None:
    if not any(_is_json(line) for line in first):
        raise _error(
            delivery.name, f"not a JSON-lines file (none of its first {len(first)} lines is JSON)"
        )


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except (
        ValueError,
        RecursionError,
    ):  # RecursionError: '[[[[...' nested deeper than Python's stack
        return False
    return True


def check_header(delivery: Delivery, header: list[str], line: int) -> None:
    """Missing or repeated contract columns fail the file.

    The message names contract columns only, and counts the others: without a header
    row the first row is read as one, and its cells are a customer's data.
    """
    known = set(delivery.spec.column_names)
    missing = [c.name for c in delivery.spec.columns if c.required and c.name not in header]
    if missing:
        unknown = sum(1 for h in header if h not in known)
        if unknown == len(header):
            others = "none of them a contract column: is the header row missing?"
        elif unknown == 0:
            others = "all of them contract columns"
        else:
            others = f"{unknown} of them not contract columns"
        raise _error(
            delivery.name,
            f"missing required column(s) {', '.join(missing)}; the header (line {line}) has {len(header)} fields, {others}",
        )
    repeated = [name for name in delivery.spec.column_names if header.count(name) > 1]
    if repeated:
        # Which of the two columns holds the value is anyone's guess.
        raise _error(
            delivery.name,
            f"column(s) {', '.join(repeated)} appear more than once in the header (line {line})",
        )


# ---------------------------------------------------------------- typing, generated from the contract


def typed_expression(column: Column, value: str) -> str:
    """SQL that turns a column's value (its text trimmed, null when empty) into its
    contract type, or null when it cannot."""
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


def problem_expression(column: Column, value: str, typed: str) -> str:
    """SQL giving a reason a person understands when the column breaks the contract, else
    null; `value` is its text trimmed (null when empty), `typed` its typed value."""
    checks = []
    if column.required:
        checks.append((f"{value} is null", f"missing required {column.name}"))
    if column.type == "enum":
        checks.append(
            (
                f"{value} is not null and {typed} is null",
                f"unknown {column.name} (allowed: {', '.join(column.values)})",
            )
        )
    elif column.type != "string":
        expected = {
            "integer": "a whole number",
            "decimal": "a number",
            "boolean": "true or false",
            "date": f"a date as {column.format}",
            "timestamp": f"a timestamp as {column.format}",
        }[column.type]
        checks.append(
            (f"{value} is not null and {typed} is null", f"{column.name} is not {expected}")
        )
    if column.min is not None:
        words = "is negative" if column.min == 0 else f"is below {column.min}"
        checks.append((f"{typed} < {column.min}", f"{column.name} {words}"))
    if column.max is not None:
        checks.append((f"{typed} > {column.max}", f"{column.name} is above {column.max}"))
    if not checks:
        return "null"
    cases = " ".join(f"when {condition} then {_quote(reason)}" for condition, reason in checks)
    return f"case {cases} end"


def typed_select(spec: SourceFile, relation: str, keep: Iterable[str] = ()) -> str:
    """Select every contract column typed, plus `_problem` and `_field_issues`, and `_line`,
    `_raw` and the columns named in `keep` as they are.

    `_problem` is null for a record that loads; otherwise it lists every problem of the
    record, and a record is quarantined for a problem of a required or non-personal
    column (the shape is checked before: CSV field counts in Python, JSON objects below).
    A problem with an optional personal column nulls that column and is listed in
    `_field_issues` (column, reason, masked value).

    The query works in steps, each naming what the next reads (`_value_<column>`, the
    typed `<column>`, `_problem_<column>`), so that nothing is computed twice: written
    as one expression per check, each trim and cast ran up to four times per field.
    """
    kept = "".join(f", {name}" for name in keep)
    # Step 1: each column's value, its text trimmed, null when empty (JSON: _parsed_json).
    values = [f"nullif({trimmed(_text_of(spec, c))}, '') as _value_{c.name}" for c in spec.columns]
    carried = ["_line", "_raw", *keep]
    checks, row_problems, all_problems, issues, selects = [], [], [], [], []
    if spec.format == "jsonl":
        relation = _parsed_json(spec, relation)
        carried += ["_valid", "_kind"]
        # JSON allows a key twice and readers keep one of the values, unseen: which one the
        # exporter meant is a guess, so a contract key given twice quarantines the record.
        # Most lines have the contract's keys in its order: that comparison is cheap, and
        # spares them the search for a key given twice.
        names = "[" + ", ".join(_quote(name) for name in spec.column_names) + "]"
        repeated = (
            f"list_filter({names}, lambda name: len(list_filter(_keys, lambda k: k = name)) > 1)"
        )
        values.append(
            f"case when _keys = {names} then null "
            f"when len(_keys) > len(list_distinct(_keys)) and len({repeated}) > 0 "
            f"then 'duplicate JSON key(s) ' || array_to_string({repeated}, ', ') end as _duplicate_keys"
        )
        row_problems.append("_duplicate_keys")
        all_problems.append("_duplicate_keys")
    # Step 2: each column typed. Step 3: each column checked.
    typed = [f"{typed_expression(c, f'_value_{c.name}')} as {c.name}" for c in spec.columns]
    for column in spec.columns:
        value = f"_value_{column.name}"
        problem = problem_expression(column, value, column.name)
        if spec.format == "jsonl":
            # An object or array where the contract has one value is not a value of the
            # column in another format but the wrong record shape (`"user_id": {"id": "U1"}`
            # would load its JSON text as an id): the record is quarantined, even when the
            # column is optional and personal, and the column's other checks are moot.
            shape = f"_shape_{column.name}"
            carried.append(shape)
            row_problems.append(shape)
            all_problems.append(shape)
            if problem != "null":
                problem = f"case when {shape} is not null then null else {problem} end"
        if problem == "null":
            selects.append(column.name)
            continue
        checks.append(f"{problem} as _problem_{column.name}")
        all_problems.append(f"_problem_{column.name}")
        if column.required or not column.pii:
            row_problems.append(f"_problem_{column.name}")
            selects.append(column.name)
            continue
        shown = mask_sql(value) if column.pii else value
        selects.append(
            f"case when _problem_{column.name} is null then {column.name} end as {column.name}"
        )
        issues.append(
            (
                f"_problem_{column.name}",
                f"case when _problem_{column.name} is not null then {{'column_name': {_quote(column.name)}, "
                f"'reason': _problem_{column.name}, 'masked_value': left({shown}, {SHOWN_VALUE_CHARS})}} end",
            )
        )
    if spec.require_one_of:
        # e.g. an erasure request naming nobody: e-mail, phone, or source and record id.
        given = " or ".join(
            "(" + " and ".join(f"{name} is not null" for name in group) + ")"
            for group in spec.require_one_of
        )
        wanted = ", or ".join(" with ".join(group) for group in spec.require_one_of)
        checks.append(
            f"case when not ({given}) then {_quote('none of ' + wanted + ' given')} end as _one_of"
        )
        row_problems.append("_one_of")
        all_problems.append("_one_of")
    # Every reason is a non-empty text: a record has a row problem when one is not null.
    row_problem = f"coalesce({', '.join(row_problems)}) is not null" if row_problems else "false"
    problem = f"case when {row_problem} then concat_ws('; ', {', '.join(all_problems)}) end"
    if issues:
        # Most records have no field issue: they get the empty list without building one.
        none = " and ".join(f"{name} is null" for name, _ in issues)
        listed = ", ".join(issue for _, issue in issues)
        field_issues = (
            f"case when {none} then cast([] as {FIELD_ISSUE}[]) "
            f"else list_filter([{listed}], lambda issue: issue is not null) end"
        )
    else:
        field_issues = f"cast([] as {FIELD_ISSUE}[])"
    if spec.format == "jsonl":
        # A line that is not a JSON object has no fields to complain about.
        problem = (
            "case when not _valid then 'malformed JSON line' "
            f"when _kind <> 'OBJECT' then 'JSON line is not an object' else {problem} end"
        )
    checked = ", ".join(checks) or "null as _no_checks"
    return (
        f"with valued as (\n  select {', '.join(carried + values)}\n  from {relation}\n),\n"
        f"typed as (\n  select *, {', '.join(typed)}\n  from valued\n),\n"
        f"checked as (\n  select *, {checked}\n  from typed\n)\n"
        f"select {', '.join(selects)}, _line, _raw{kept},\n  {problem} as _problem,\n"
        f"  {field_issues} as _field_issues\nfrom checked"
    )


def trimmed(text: str) -> str:
    """SQL: trim(text), which strips spaces and the other Unicode space separators (no-break
    space, ideographic space...), only run on a text that may have one at an end: trim
    decodes every character, and cost more than any other step of typing a CSV file.
    A text of ASCII characters only (as many bytes as characters) that neither starts nor
    ends with a space is as trim would leave it."""
    return (
        f"case when {text} like ' %' or {text} like '% ' or strlen({text}) <> length({text}) "
        f"then trim({text}) else {text} end"
    )


def _text_of(spec: SourceFile, column: Column) -> str:
    if spec.format == "csv":
        return column.name
    return f"_text_{column.name}"


def _parsed_json(spec: SourceFile, relation: str) -> str:
    """JSON lines with what typed_select needs of each: whether it is JSON at all
    (`_valid`), its JSON type (`_kind`, null when it is not JSON), its keys (`_keys`), and
    for each contract column its text (`_text_<column>`) and, when its value is an object
    or an array, the reason it has the wrong shape (`_shape_<column>`).

    Each line is parsed three times: json_valid, json_extract_string (all the contract's
    paths in one call) and json_keys. An object or array reads as its JSON text, so only
    a value whose text starts with `{` or `[` is asked its JSON type (a string may start
    so too), and only a line that does not start with `{` is asked its own: the line's
    first character is its JSON type. (Deriving texts and types from json_extract's JSON
    text instead costs more in string functions than the parse it saves.)

    Only lines that are JSON are parsed further: try() evaluates a whole batch of rows
    again one by one when one of them fails, so malformed lines must not reach it.
    """
    paths = "[" + ", ".join(_quote("$." + name) for name in spec.column_names) + "]"
    columns = []
    for position, name in enumerate(spec.column_names, start=1):
        text = f"_texts[{position}]"
        columns.append(f"{text} as _text_{name}")
        columns.append(
            f"case when starts_with({text}, '{{') or starts_with({text}, '[') then "
            f"case try(json_type(_raw, {_quote('$.' + name)})) "
            f"when 'OBJECT' then {_quote(name + ' is a JSON object, not a single value')} "
            f"when 'ARRAY' then {_quote(name + ' is a JSON array, not a single value')} end "
            f"end as _shape_{name}"
        )
    return (
        f"(select *, {', '.join(columns)} from ("
        f"select *, case when _valid then try(json_extract_string(_raw, {paths})) end as _texts, "
        "case when _valid then try(json_keys(_raw)) end as _keys, "
        "case when not _valid then null when starts_with(_raw, '{') then 'OBJECT' "
        "else try(json_type(_raw)) end as _kind "
        f"from (select *, coalesce(try(json_valid(_raw)), false) as _valid from {relation})))"
    )


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
            -- Rows since deleted by retention (assets/privacy/retention.py): counted, not lost.
            rows_purged bigint default 0,
            quarantine_rows_purged bigint default 0,
            purged_at timestamp
        )"""
    )
    # Warehouses made before retention existed get the columns (0: nothing purged yet).
    for column, kind in (
        ("rows_purged", "bigint default 0"),
        ("quarantine_rows_purged", "bigint default 0"),
        ("purged_at", "timestamp"),
    ):
        con.execute(f"alter table raw.deliveries add column if not exists {column} {kind}")
    # Warehouses published before the column was dropped still have it: every row said
    # 'loaded' (a re-delivered file goes to raw.duplicate_deliveries), so it told nothing.
    con.execute("alter table raw.deliveries drop column if exists status")
    # Rows dropped because they carry an erased person (assets/ingest/suppression.py); added
    # after the others, so a warehouse published before it gets it in the same place.
    con.execute(
        "alter table raw.deliveries add column if not exists rows_suppressed bigint default 0"
    )
    # Rows of the delivery an erasure deleted later, from raw or quarantine (assets/privacy/erasure.py).
    con.execute("alter table raw.deliveries add column if not exists rows_erased bigint default 0")
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
        # A warehouse built before the contract gained an optional column (referral codes,
        # membership plans) gets it here, empty for what was delivered before; rows are
        # appended by name, so where it lands among the columns does not matter.
        for column in spec.columns:
            con.execute(
                f"alter table raw.{spec.table} add column if not exists {column.name} {_sql_type(column)}"
            )
    for table in (
        "raw.deliveries",
        "raw.duplicate_deliveries",
        "quality.quarantine",
        "quality.field_issues",
        *(f"raw.{spec.table}" for spec in source_files()),
    ):
        comment_on_table(con, table)


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


def ingest_inbox(
    con: duckdb.DuckDBPyConnection,
    inbox: Path,
    max_bad_share: float = 0.05,
    limits: Limits = Limits(),
) -> IngestResult:
    """Ingest every delivery of the inbox not seen before. Raises DeliveryError naming every
    file that cannot be loaded, a line each."""
    create_raw_tables(con)
    try:
        suppressing = suppression_active(con)
    except SuppressionError as err:
        raise DeliveryError(str(err)) from None
    seen = dict(con.execute("select delivery_id, file from raw.deliveries").fetchall())
    result, problems = IngestResult(), []
    for delivery in find_deliveries(inbox, result.ignored_files, limits, problems):
        original = seen.get(delivery.sha256) or seen.get(delivery.file_sha256)
        if original is not None:
            if original != delivery.name:
                _record_duplicate(con, delivery, original)
            continue
        try:
            summary = ingest_delivery(con, delivery, limits, suppressing)
        except DeliveryError as err:
            problems.append(str(err))
            continue
        bad_share = (
            summary["rows_quarantined"] / summary["rows_read"] if summary["rows_read"] else 0.0
        )
        if bad_share > max_bad_share:
            problems.append(
                str(
                    _error(
                        delivery.name,
                        f"{summary['rows_quarantined']} of {summary['rows_read']} rows "
                        f"({bad_share:.1%}) break the contract, above the {max_bad_share:.0%} threshold; "
                        "see quality.quarantine for the reasons",
                    )
                )
            )
        seen[delivery.sha256] = delivery.name
        result.deliveries.append(summary)
    if problems:
        # The run fails and nothing of it is published; every failed file is named at once.
        raise DeliveryError("\n".join(problems))
    return result


def _record_duplicate(con: duckdb.DuckDBPyConnection, delivery: Delivery, original: str) -> None:
    already = con.execute(
        "select count(*) from raw.duplicate_deliveries where file = ? and sha256 = ?",
        [delivery.name, delivery.sha256],
    ).fetchall()[0][0]
    if not already:
        con.execute(
            "insert into raw.duplicate_deliveries values (?, ?, ?, ?)",
            [delivery.name, delivery.sha256, original, _now()],
        )


def ingest_delivery(
    con: duckdb.DuckDBPyConnection,
    delivery: Delivery,
    limits: Limits = Limits(),
    suppressing: bool = False,
) -> dict:
    """Load one delivery; with `suppressing`, rows of erased people are dropped and counted
    (assets/ingest/suppression.py)."""
    try:
        return _ingest_delivery(con, delivery, limits, suppressing)
    except duckdb.Error as err:
        # Some of DuckDB's messages quote the value they failed on, and this message goes
        # to logs and Dagster events: only the kind of error, unless it is about the machine.
        about_machine = isinstance(err, (duckdb.IOException, duckdb.OutOfMemoryException))
        raise _error(
            delivery.name, f"could not be loaded ({err if about_machine else type(err).__name__})"
        ) from None


def _read_records(
    con: duckdb.DuckDBPyConnection, delivery: Delivery, limits: Limits
) -> tuple[str, str]:
    """A query of the delivery's records, and which path read them: "duckdb" (the fast
    path) or "python" (the exact path).

    The query gives `_line`, `_raw`, for CSV the text of each contract column, and
    `_reject`: the reason a record was rejected while splitting, null for the others.
    DuckDB reads the file when it can (fast_path.py); otherwise it is read here, as a
    stream, into temp tables incoming_records and incoming_rejects, in the first encoding
    that fits. drop_records drops whatever either path left.
    """
    # Imported here: fast_path builds on this module's checks.
    from assets.ingest.fast_path import read_records

    fast = read_records(con, delivery, limits)
    if fast is not None:
        return fast, "duckdb"
    spec = delivery.spec
    for encoding in ENCODINGS:
        records = _Records(con, spec.column_names if spec.format == "csv" else [])
        try:
            if spec.format == "csv":
                split_csv(delivery, read_lines(delivery, limits, encoding), records)
            else:
                split_jsonl(delivery, read_lines(delivery, limits, encoding), records)
        except UnicodeDecodeError:
            continue  # start over: a file is decoded in one encoding throughout
        records.flush()
        break
    texts = "".join(f", null::varchar as {name}" for name in records.columns)
    query = (
        "(select *, null::varchar as _reject from incoming_records "
        f"union all select _line, _raw{texts}, _reason from incoming_rejects)"
    )
    return query, "python"


def drop_records(con: duckdb.DuckDBPyConnection) -> None:
    """Drop what either path of _read_records left."""
    from assets.ingest.fast_path import drop_lines

    drop_lines(con)
    con.execute("drop table if exists incoming_records")
    con.execute("drop table if exists incoming_rejects")


def _ingest_delivery(
    con: duckdb.DuckDBPyConnection, delivery: Delivery, limits: Limits, suppressing: bool = False
) -> dict:
    spec = delivery.spec
    try:
        records, read_by = _read_records(con, delivery, limits)
        suppressed = (suppressed_sql(spec) if suppressing else None) or "false"
        # Typed in one pass over the records, wherever they were split. A record rejected
        # while splitting keeps that one reason, and has no fields to type or compare. A
        # suppressed row is dropped whatever else is wrong with it: neither loaded nor
        # quarantined (a quarantine row keeps the raw text), only counted. The raw text is
        # kept for the rows that go to quarantine only: less to copy.
        con.execute(
            f"""
            create or replace temp table incoming as
            select * exclude (_reject) replace (
                coalesce(_reject, _problem) as _problem,
                case when _reject is not null or _problem is not null then _raw end as _raw,
                case when _reject is null then _field_issues else [] end as _field_issues
            ),
            _reject is null and {suppressed} as _suppressed
            from ({typed_select(spec, records, keep=["_reject"])})"""
        )
    finally:
        drop_records(con)
    try:
        summary = _append(con, delivery)
    finally:
        con.execute("drop table if exists incoming")
    summary["read_by"] = read_by  # not in the manifest: which path read the file
    return summary


def _append(con: duckdb.DuckDBPyConnection, delivery: Delivery) -> dict:
    """The typed records of temp table incoming to raw, quarantine and field issues, and the
    delivery to raw.deliveries; its summary."""
    spec = delivery.spec
    now = _now()
    delivered_on = datetime.strptime(delivery.delivered_on, "%Y%m%d").date()
    columns = ", ".join(spec.column_names)
    # In line order, as the records came (incoming keeps their order).
    con.execute(
        f"insert into raw.{spec.table} by name select {columns}, ? as _delivery_id, ? as _file, "
        "? as _delivered_on, _line from incoming "
        "where _problem is null and not _suppressed",
        [delivery.sha256, delivery.name, delivered_on],
    )
    con.execute(
        """
        insert into quality.quarantine
        select ?, ?, ?, _line, _problem, _raw, ?, ? from incoming
        where _problem is not null and not _suppressed""",
        [spec.source, spec.entity, delivery.name, delivery.sha256, now],
    )
    con.execute(
        """
        insert into quality.field_issues
        select ?, ?, ?, _line, issue.column_name, issue.reason, issue.masked_value, ?, ?
        from (
            select _line, unnest(_field_issues) as issue, generate_subscripts(_field_issues, 1) as position
            from incoming
            where _problem is null and not _suppressed and len(_field_issues) > 0
        )
        order by _line, position""",
        [spec.source, spec.entity, delivery.name, delivery.sha256, now],
    )
    loaded, quarantined, rows_suppressed, field_issues = con.execute(
        "select count(*) filter (where _problem is null and not _suppressed), "
        "count(*) filter (where _problem is not null and not _suppressed), "
        "count(*) filter (where _suppressed), "
        "coalesce(sum(len(_field_issues)) filter (where _problem is null and not _suppressed), 0) "
        "from incoming"
    ).fetchall()[0]
    summary = {
        "delivery_id": delivery.sha256,
        "file": delivery.name,
        "source": spec.source,
        "entity": spec.entity,
        "delivered_on": delivered_on,
        "size_bytes": delivery.size_bytes,
        "rows_read": loaded + quarantined + rows_suppressed,
        "rows_loaded": loaded,
        "rows_quarantined": quarantined,
        "ingested_at": now,
        "rows_suppressed": rows_suppressed,
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
