"""The analytics warehouse: the run's tables for analysts, with every personal value pseudonymized.

Which tables: every table of the schemas in ANALYTICS_SCHEMAS (staging, identity, core,
loyalty, marts, quality) but the pipeline's working steps, which the catalog marks
`for_analysts: false` (matching keys, Splink's input and raw clusters, point lots before
settling): they repeat what the published tables say, and copying them cost a third of
the file's build. The raw schema is left out whole: it is the deliveries' rows as
delivered, which analysts need nothing of that staging and quality do not hold cleaned.

Which columns: derived from the catalog (schemas/warehouse/, assets/shared/catalog.py),
never from a list kept here. A column flagged `pii: true` is replaced by
`<column>_hash`, its salted SHA-256 pseudonym (assets/shared/pseudonyms.py): the same
e-mail gives the same hash in every table and run, so joins and distinct counts still
work. Every other documented column is copied as it is (ids such as customer_id and
source_record_id are not flagged personal: they are the keys analysts join on).

Fail-closed: a table or column of those schemas that the catalog does not document stops
the build with a one-line error naming it, and nothing is published. Dropping it instead
would hand analysts a quietly incomplete file and leave the question "is this personal?"
unanswered; the catalog is the one place where it is answered (tests/test_end_to_end.py
already demands every built column be documented, so this fires at development time).

Everything is set-based: one `create table` and one `insert ... select` per table into the
attached analytics file (mostly distinct text stored with ZSTD, see DISTINCT_TEXT_COMPRESSION),
and the check (check_analytics) one pass over every text value of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from assets.shared.catalog import documented, personal_columns
from assets.shared.pseudonyms import SALT_VARIABLE, pseudonym_sql, set_salt

ANALYTICS_SCHEMAS = ("staging", "identity", "core", "loyalty", "marts", "quality")
# Left out whole, and why (docs/privacy.md).
LEFT_OUT_SCHEMAS = {"raw": "rows as delivered; staging holds them cleaned"}
HASH_SUFFIX = "_hash"
# The analytics file's name on the build connection while it is written or checked.
ATTACHED = "analytics"
HEX_SHA256 = "[0-9a-f]{64}"
# Text columns whose values are mostly distinct (ids such as entry_id, e-mails, their
# pseudonyms) are written with ZSTD instead of DuckDB's default dictionary + FSST: a
# dictionary of distinct values saves nothing, and analysing it was a third of the
# file's build. The values are the same; the file is a little larger (docs/benchmarks.md).
DISTINCT_TEXT_COMPRESSION = "zstd"
DISTINCT_SHARE = 0.5
MIN_ROWS_FOR_STATISTICS = 10_000


class PrivacyError(ValueError):
    """The analytics warehouse cannot be built safely; the message is one line, naming no value."""


@dataclass(frozen=True)
class AnalyticsTable:
    table: str  # schema.name, the same in the build and the analytics file
    columns: tuple[tuple[str, bool], ...]  # (column, is personal) in the build's order

    @property
    def hashed(self) -> list[str]:
        return [name for name, personal in self.columns if personal]

    @property
    def copied(self) -> list[str]:
        return [name for name, personal in self.columns if not personal]


def analytics_tables(con: duckdb.DuckDBPyConnection) -> list[AnalyticsTable]:
    """What the analytics file will hold: every table of ANALYTICS_SCHEMAS in the build, its
    columns split by the catalog's pii flags. PrivacyError for anything the catalog does not document."""
    docs = documented()
    tables = []
    for table in _tables(con, ANALYTICS_SCHEMAS):
        doc = docs.get(table)
        if doc is None:
            raise PrivacyError(
                f"{table}: table not documented in schemas/warehouse/, so nobody has said which of its "
                f"columns are personal; document it (with pii flags) to build the analytics warehouse"
            )
        if not doc.for_analysts:
            continue
        known = {column.name for column in doc.columns}
        personal = personal_columns(table)
        present = _columns(con, table)
        columns = []
        for name in present:
            if name not in known:
                raise PrivacyError(
                    f"{table}.{name}: column not documented in schemas/warehouse/, so it is not known "
                    f"whether it is personal; document it (with its pii flag) to build the analytics warehouse"
                )
            if name in personal and name + HASH_SUFFIX in present:
                raise PrivacyError(
                    f"{table}.{name}: its pseudonym would be named {name}{HASH_SUFFIX}, "
                    f"which the table already has; rename one"
                )
            columns.append((name, name in personal))
        tables.append(AnalyticsTable(table, tuple(columns)))
    return tables


def build_analytics(
    con: duckdb.DuckDBPyConnection, path: str | Path, salt: str
) -> list[AnalyticsTable]:
    """Write the analytics file at `path` (replacing one a failed attempt left) from the build
    `con` is connected to. The salt is used in the connection only, never written to the file."""
    tables = analytics_tables(con)  # every catalog problem before any file is written
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)
    build_db = _current_database(con)
    set_salt(con, salt)
    con.execute(f"attach {_literal(str(path))} as {ATTACHED}")
    try:
        for spec in tables:
            schema, name = spec.table.split(".")
            select = ",\n  ".join(
                f"{pseudonym_sql(_quoted(column))} as {_quoted(column + HASH_SUFFIX)}"
                if personal
                else _quoted(column)
                for column, personal in spec.columns
            )
            source = f"{_quoted(build_db)}.{schema}.{name}"
            types = _column_types(con, build_db, spec.table)
            distinct = _mostly_distinct_text(con, build_db, spec.table)
            definitions = ",\n  ".join(
                f"{_quoted(column + HASH_SUFFIX if personal else column)} "
                f"{'VARCHAR' if personal else types[column]}"
                + (f" using compression {DISTINCT_TEXT_COMPRESSION}" if column in distinct else "")
                for column, personal in spec.columns
            )
            con.execute(f"create schema if not exists {ATTACHED}.{schema}")
            con.execute(f"create table {ATTACHED}.{schema}.{name} (\n  {definitions}\n)")
            con.execute(
                f"insert into {ATTACHED}.{schema}.{name}\nselect\n  {select}\nfrom {source}"
            )
            _comment(con, spec)
        con.execute(f"checkpoint {ATTACHED}")
    finally:
        con.execute(f"detach database if exists {ATTACHED}")
        con.execute(f"reset variable {SALT_VARIABLE}")
    return tables


def _column_types(con: duckdb.DuckDBPyConnection, database: str, table: str) -> dict[str, str]:
    schema, name = table.split(".")
    return dict(
        con.execute(
            "select column_name, data_type from duckdb_columns() "
            "where database_name = ? and schema_name = ? and table_name = ?",
            [database, schema, name],
        ).fetchall()
    )


def _mostly_distinct_text(con: duckdb.DuckDBPyConnection, database: str, table: str) -> set[str]:
    """The text columns of `table` whose values are mostly distinct (ids, e-mails), by the
    statistics DuckDB keeps with the table (no scan). Their pseudonyms are as distinct."""
    rows = con.execute(
        "select estimated_size from duckdb_tables() where database_name = ? "
        "and schema_name = ? and table_name = ?",
        [database, *table.split(".")],
    ).fetchall()[0][0]
    text = _text_columns(con, table, database)
    if not text or rows < MIN_ROWS_FOR_STATISTICS:
        return set()
    stats = con.execute(
        "select "
        + ", ".join(f"stats({_quoted(c)})" for c in text)
        + f" from {_quoted(database)}.{table} limit 1"
    ).fetchall()
    if not stats:
        return set()
    return {
        column
        for column, found in zip(text, stats[0], strict=True)
        if found and found.get("approx_unique", 0) >= rows * DISTINCT_SHARE
    }


def _comment(con: duckdb.DuckDBPyConnection, spec: AnalyticsTable) -> None:
    """The catalog's descriptions as DuckDB comments; a pseudonym says what it stands for."""
    doc = documented()[spec.table]
    described = {column.name: column.description for column in doc.columns}
    target = f"{ATTACHED}.{spec.table}"
    con.execute(f"comment on table {target} is {_literal(doc.description)}")
    for column, personal in spec.columns:
        if personal:
            text = (
                f"[pseudonym] salted SHA-256 of {column} (personal data, not in this file): "
                f"{described[column]}. Equal values have equal hashes in every table."
            )
            column = column + HASH_SUFFIX
        else:
            text = described[column]
        con.execute(f"comment on column {target}.{_quoted(column)} is {_literal(text)}")


def check_analytics(con: duckdb.DuckDBPyConnection, path: str | Path, salt: str) -> list[str]:
    """Problems of the analytics file at `path` against the build `con` is connected to, one line
    each naming a table and column, never a value; empty when the file is safe to publish.

    - every table of ANALYTICS_SCHEMAS is there with exactly its non-personal columns and a
      `<column>_hash` for each personal one, and nothing else is (no raw table);
    - every `_hash` column holds 64 hex characters or null;
    - no value of any personal column of the build (raw tables included) appears verbatim in
      any text column of the file, unless the build holds the same text in a column the
      catalog calls non-personal (a surname that is also a city): a leak is a personal value
      that reached the file by another way than as a documented non-personal value;
    - the salt appears in no text column.
    """
    build_db = _current_database(con)
    expected = {spec.table: spec for spec in analytics_tables(con)}
    con.execute(f"attach {_literal(str(path))} as {ATTACHED} (read_only)")
    try:
        problems = _structure_problems(con, expected)
        if problems:
            return problems  # the value checks below assume the expected columns
        problems += _hash_format_problems(con, expected.values())
        problems += _leak_problems(con, build_db, expected.values(), salt)
        return problems
    finally:
        con.execute(f"detach database if exists {ATTACHED}")
        con.execute("drop table if exists temp.privacy_personal_values")
        con.execute("drop table if exists temp.privacy_hits")


def _structure_problems(
    con: duckdb.DuckDBPyConnection, expected: dict[str, AnalyticsTable]
) -> list[str]:
    problems = []
    found = _tables(con, None, database=ATTACHED)
    for table in sorted(set(found) - set(expected)):
        problems.append(f"{table}: in the analytics file but not an analytics table")
    for table, spec in expected.items():
        if table not in found:
            problems.append(f"{table}: missing from the analytics file")
            continue
        want = [column + HASH_SUFFIX if personal else column for column, personal in spec.columns]
        have = _columns(con, table, database=ATTACHED)
        for column in spec.hashed:
            if column in have:
                problems.append(f"{table}.{column}: personal column present unhashed")
        for column in sorted(set(have) - set(want) - set(spec.hashed)):
            problems.append(f"{table}.{column}: column not expected in the analytics file")
        for column in sorted(set(want) - set(have)):
            problems.append(f"{table}.{column}: missing from the analytics file")
    return problems


def _hash_format_problems(
    con: duckdb.DuckDBPyConnection, tables: list[AnalyticsTable]
) -> list[str]:
    problems = []
    for spec in tables:
        if not spec.hashed:
            continue
        counts = ", ".join(
            f"count(*) filter (where {_quoted(c + HASH_SUFFIX)} is not null and not "
            f"regexp_full_match(cast({_quoted(c + HASH_SUFFIX)} as varchar), '{HEX_SHA256}'))"
            for c in spec.hashed
        )
        bad = con.execute(f"select {counts} from {ATTACHED}.{spec.table}").fetchall()[0]
        for column, n in zip(spec.hashed, bad, strict=True):
            if n:
                problems.append(
                    f"{spec.table}.{column}{HASH_SUFFIX}: {n} values are not SHA-256 hashes"
                )
    return problems


def _leak_problems(
    con: duckdb.DuckDBPyConnection, build_db: str, tables: list[AnalyticsTable], salt: str
) -> list[str]:
    # Every personal value the build holds, as text: the personal columns of every documented
    # table present, raw ones included (values as delivered, before cleaning).
    docs = documented()
    sources = []
    for table in _tables(con, None, database=build_db):
        if table not in docs:
            continue
        present = set(_columns(con, table, database=build_db))
        sources += [
            f"select cast({_quoted(c)} as varchar) as v from {_quoted(build_db)}.{table}"
            for c in sorted(personal_columns(table) & present)
        ]
    con.execute(
        "create or replace temp table privacy_personal_values as select distinct v from ("
        + ("\nunion all\n".join(sources) or "select null::varchar as v")
        + ") where v is not null and v <> ''"
    )
    # Every text column of the file in one pass: each value is looked up among the personal
    # values and searched for the salt. A query per column built the hash table of the
    # personal values again each time (150 times), and a second pass for the salt read
    # every text value again.
    text_values = [
        f"select {_literal(spec.table)} as tbl, {_literal(column)} as col, {_quoted(column)} as v "
        f"from {ATTACHED}.{spec.table}"
        for spec in tables
        for column in _text_columns(con, spec.table, database=ATTACHED)
    ]
    con.execute(
        "create or replace temp table privacy_hits as select distinct tbl, col, v, is_personal, has_salt from (\n"
        "select tbl, col, v, v in (select v from privacy_personal_values) as is_personal, "
        "contains(v, $salt) as has_salt from (\n"
        + (
            "\nunion all\n".join(text_values)
            or "select null::varchar as tbl, null::varchar as col, null::varchar as v"
        )
        + "\n) as text_values\n) where is_personal or has_salt",
        {"salt": salt},
    )
    problems = [
        f"{table}.{column}: holds the pseudonym salt"
        for table, column in con.execute(
            "select distinct tbl, col from privacy_hits where has_salt order by all"
        ).fetchall()
    ]
    con.execute("delete from privacy_hits where not is_personal")
    if con.execute("select count(*) from privacy_hits").fetchall()[0][0]:
        # Excuse the text the build also holds as documented non-personal data.
        for spec in tables:
            for column in _text_columns(con, spec.table, database=build_db):
                if column in spec.copied:
                    con.execute(
                        f"delete from privacy_hits where v in "
                        f"(select {_quoted(column)} from {_quoted(build_db)}.{spec.table})"
                    )
    for table, column, n in con.execute(
        "select tbl, col, count(*) from privacy_hits group by all order by all"
    ).fetchall():
        problems.append(
            f"{table}.{column}: {n} distinct values equal to personal values of the warehouse"
        )
    return problems


def _current_database(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("select current_database()").fetchall()[0][0]


def _tables(
    con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] | None, database: str | None = None
) -> list[str]:
    database = database or _current_database(con)
    rows = con.execute(
        "select schema_name, table_name from duckdb_tables() "
        "where database_name = ? and not temporary order by all",
        [database],
    ).fetchall()
    return [f"{s}.{t}" for s, t in rows if schemas is None or s in schemas]


def _columns(con: duckdb.DuckDBPyConnection, table: str, database: str | None = None) -> list[str]:
    schema, name = table.split(".")
    return [
        column
        for (column,) in con.execute(
            "select column_name from duckdb_columns() where database_name = ? and schema_name = ? "
            "and table_name = ? order by column_index",
            [database or _current_database(con), schema, name],
        ).fetchall()
    ]


def _text_columns(con: duckdb.DuckDBPyConnection, table: str, database: str) -> list[str]:
    schema, name = table.split(".")
    return [
        column
        for (column,) in con.execute(
            "select column_name from duckdb_columns() where database_name = ? and schema_name = ? "
            "and table_name = ? and data_type = 'VARCHAR' order by column_index",
            [database, schema, name],
        ).fetchall()
    ]


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
