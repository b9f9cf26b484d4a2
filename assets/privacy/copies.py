"""Erasure outside the build: every copy of an erased person the project keeps on disk.

The erasure step (assets/privacy/erasure.py) removes a person from the run's build. Older
copies hold them too, and this module reaches them, after the run has published (so the
version the publish just moved to previous/ is among them):

- previous warehouse versions kept for rollback, and their analytics twins
  (scrub_previous_versions, scrub_warehouse_file);
- failed builds in builds/ (remove_failed_builds: debris, deleted whole);
- marketing exports of every date (scrub_exports);
- Splink's record-level charts of past dates (remove_record_level_charts);

and find_erased_values_everywhere is the search a blocking check runs afterwards.

What identifies an erased person here is only what the build keeps (ErasedPeople, read by
read_erased_people): their customer ids (privacy.erased_customers: every id they ever had,
so rows of older files are found under the id of their day), the salted hashes of their
e-mails, phones and records (privacy.suppressed_identifiers) and their records' pseudonymous
ids (privacy.erased_records). No plain value is needed or kept: a copy's values are hashed
with the same salt (assets/shared/pseudonyms.py) and compared, set-based in DuckDB.

A row of a copy belongs to an erased person when (any of)
- a customer-id column (customer_id, *_customer_id; extern_id in Meta files) is erased;
- in a table holding personal data, its record ((source, source_record_id), unique_id*,
  cluster_id, or a raw customer file's key) hashes to a suppressed record;
- a personal column (catalog pii flags, only those present: old files have old schemas)
  hashes to a suppressed e-mail or phone; in an analytics file, its `<column>_hash` is one;
- quality.quarantine / quality.field_issues: its (file, line) is the line of an erased raw
  row, or the quarantined text holds a token (an e-mail, a record id) hashing to one.

Accounting (ACCOUNTING_TABLES: events, ledger, movements, balances, tier history) is kept,
as in the build, but moved to the pseudonymous id privacy.erased_records gives the person's
records: the old customer id went out in exports (and to ad platforms as extern_id), so
under it the entries would still lead to a person. Rows whose customer cannot be mapped
(the file has no identity.source_records for them) are deleted instead. Raw order,
transaction and app-event rows hold no personal column and stay, as in the build.

A rewritten warehouse file is a new file holding only the kept rows (deleted rows would stay
readable in DuckDB's free blocks), renamed over the old one with its mode. Nothing here logs,
raises or returns a personal value: results are counts per table or file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from assets.ingest.contract import source_files
from assets.shared.catalog import documented
from assets.shared.pseudonyms import pseudonym_sql, set_salt
from assets.shared.warehouse import Warehouse, writer_pid

# Read from the warehouse that applied the erasures (the run's build or the published file).
ERASED_CUSTOMERS = "privacy.erased_customers"
SUPPRESSED = "privacy.suppressed_identifiers"
ERASED_RECORDS = "privacy.erased_records"
ERASURE_LOG = "privacy.erasure_log"

# Kept under the person's pseudonymous id instead of deleted (see the module docstring).
ACCOUNTING_TABLES = (
    "core.events",
    "loyalty.ledger",
    "loyalty.point_movements",
    "loyalty.debits",
    "loyalty.lot_expiry",
    "loyalty.qualifying_events",
    "loyalty.balances",
    "loyalty.tier_history",
)
# Tables whose rows are lines of delivered files, matched by (file, line).
LINE_TABLES = ("quality.quarantine", "quality.field_issues")
SAVED_TERM_FREQUENCIES = "identity.saved_term_frequencies"
HASH_SUFFIX = "_hash"
# Splink's charts that describe the model, not records: kept for every date.
MODEL_LEVEL_CHARTS = frozenset({"match_weights.html", "m_u_parameters.html", "splink_model.json"})
# Quarantined text is split into tokens on these to find an e-mail or a record id in it.
TOKEN_SEPARATORS = r"[\s,;:\"'{}\[\]()<>|]+"
# Export columns that identify a person row by row, and how they are compared.
EXPORT_ID_COLUMNS = ("customer_id", "extern_id")


@dataclass(frozen=True)
class ErasedPeople:
    """What identifies the erased people, without a plain value: small tables of ids and hashes."""

    salt: str
    customer_ids: pa.Table  # customer_id: every id an erased person ever had
    hashes: pa.Table  # kind ('email' | 'phone' | 'record'), identifier_hash
    records: pa.Table  # source, source_record_id, erased_customer_id
    # The latest completion of a request that erased somebody: files that cannot be matched
    # row by row (Google's hashed-only audiences) and were written before it are deleted.
    erased_since: datetime | None
    # The privacy.* tables, carried into previous main versions so a rollback keeps them.
    privacy_tables: Mapping[str, pa.Table] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return self.customer_ids.num_rows == 0 and self.hashes.num_rows == 0


def read_erased_people(source: str | Path | duckdb.DuckDBPyConnection, salt: str) -> ErasedPeople:
    """The erased people as the warehouse `source` (a path, or an open connection to the build)
    knows them. A missing privacy table counts as empty (no erasure yet)."""
    own = not isinstance(source, duckdb.DuckDBPyConnection)
    con = duckdb.connect(str(source), read_only=True) if own else source
    try:
        present = {
            f"{s}.{t}"
            for s, t in con.execute(
                "select schema_name, table_name from duckdb_tables() "
                "where database_name = current_database() and schema_name = 'privacy'"
            ).fetchall()
        }

        def arrow(sql: str, table: str, empty: str) -> pa.Table:
            return con.sql(sql if table in present else empty).to_arrow_table()

        customer_ids = arrow(
            f"select distinct customer_id from {ERASED_CUSTOMERS} where customer_id is not null",
            ERASED_CUSTOMERS,
            "select null::varchar as customer_id where false",
        )
        hashes = arrow(
            f"select distinct kind, identifier_hash from {SUPPRESSED}",
            SUPPRESSED,
            "select null::varchar as kind, null::varchar as identifier_hash where false",
        )
        records = arrow(
            f"select distinct source, source_record_id, erased_customer_id from {ERASED_RECORDS}",
            ERASED_RECORDS,
            "select null::varchar as source, null::varchar as source_record_id, "
            "null::varchar as erased_customer_id where false",
        )
        erased_since = None
        if ERASURE_LOG in present:
            erased_since = con.execute(
                f"select max(completed_at) filter (where customers_erased > 0) from {ERASURE_LOG}"
            ).fetchall()[0][0]
            if erased_since is not None and erased_since.tzinfo is None:
                erased_since = erased_since.replace(tzinfo=UTC)
        tables = {table: con.sql(f"select * from {table}").to_arrow_table() for table in present}
    finally:
        if own:
            con.close()
    return ErasedPeople(salt, customer_ids, hashes, records, erased_since, tables)


def _load(con: duckdb.DuckDBPyConnection, erased: ErasedPeople) -> None:
    """The erased people as temp tables of `con`, and the salt, for the SQL below."""
    set_salt(con, erased.salt)
    for name, table in (
        ("erased_ids", erased.customer_ids),
        ("listed", erased.hashes),
        ("erased_map", erased.records),
    ):
        con.register(f"{name}_arrow", table)
        con.execute(f"create or replace temp table {name} as select * from {name}_arrow")
        con.unregister(f"{name}_arrow")


def _listed(kinds: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{kind}'" for kind in kinds)
    return f"(select identifier_hash from temp.listed where kind in ({quoted}))"


PEOPLE_HASHES = _listed(("email", "phone"))
RECORD_HASHES = _listed(("record",))
ERASED_IDS = "(select customer_id from temp.erased_ids)"


# --- warehouse files -------------------------------------------------------------------


@dataclass
class FileScrub:
    """What scrubbing one warehouse file did, in counts."""

    path: Path
    deleted: dict[str, int] = field(default_factory=dict)  # table -> rows deleted
    rekeyed: dict[str, int] = field(default_factory=dict)  # table -> rows moved to a pseudonym
    rewritten: bool = False
    privacy_tables_carried: int = 0


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _columns(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, dict[str, str]]:
    """'schema.table' -> {column: type} for every table of database `db`."""
    tables: dict[str, dict[str, str]] = {}
    for schema, table, column, data_type in con.execute(
        "select schema_name, table_name, column_name, data_type from duckdb_columns() "
        "where database_name = ? order by schema_name, table_name, column_index",
        [db],
    ).fetchall():
        tables.setdefault(f"{schema}.{table}", {})[column] = data_type
    return tables


def _raw_record_keys() -> dict[str, tuple[str, str]]:
    """raw.<table> of a customer-record file (one with personal columns) -> (source, key column)."""
    return {
        f"raw.{spec.table}": (spec.source, spec.key[0])
        for spec in source_files()
        if len(spec.key) == 1 and any(c.pii for c in spec.columns)
    }


def _personal(table: str, columns: dict[str, str]) -> set[str]:
    """Personal columns of a table as present in a file; a table the catalog does not document
    (an old file's) is treated as all personal."""
    doc = documented().get(table)
    if doc is None:
        return set(columns)
    return {c.name for c in doc.columns if c.pii}


@dataclass(frozen=True)
class TableTerms:
    """The expressions of one table (alias t) that can tie a row to a person."""

    ids: tuple[str, ...]  # customer-id columns
    keys: tuple[str, ...]  # record keys as 'source:record id' text
    values: tuple[str, ...]  # personal text columns (e-mail, phone, ...), as stored
    hashes: tuple[str, ...]  # an analytics file's `<personal column>_hash` columns


def _terms(table: str, columns: dict[str, str], customer_id: bool = True) -> TableTerms:
    """Which columns of a table identify a person; without `customer_id`, the column
    customer_id itself is left out (accounting tables, moved to a pseudonym instead)."""
    ids = [
        f"t.{_quoted(c)}"
        for c in columns
        if (c == "customer_id" and customer_id) or c.endswith("_customer_id")
    ]
    personal = _personal(table, columns)
    # Splink's keys (source:record id) only ever name records of the identity graph.
    keys = [
        f"t.{_quoted(c)}"
        for c in columns
        if c == "cluster_id" or re.fullmatch(r"unique_id(_\w+)?", c)
    ]
    # Elsewhere a record id identifies a person only where the table holds their personal
    # data: orders, transactions and app events keep theirs, for accounting, as in the build.
    if any(c in columns or c + HASH_SUFFIX in columns for c in personal):
        if "source" in columns and "source_record_id" in columns:
            keys.append("t.source || ':' || t.source_record_id")
        raw_key = _raw_record_keys().get(table)
        if raw_key is not None and raw_key[1] in columns:
            keys.append(f"{_literal(raw_key[0] + ':')} || t.{_quoted(raw_key[1])}")
    values: list[str] = []
    hashes: list[str] = []
    if table not in LINE_TABLES:  # free text: matched by its line (_line_sql)
        values = [
            f"t.{_quoted(c)}" for c, kind in columns.items() if c in personal and kind == "VARCHAR"
        ]
        hashes = [
            f"t.{_quoted(c)}"
            for c in columns
            if c.endswith(HASH_SUFFIX) and c.removesuffix(HASH_SUFFIX) in personal
        ]
    return TableTerms(tuple(ids), tuple(keys), tuple(values), tuple(hashes))


def _erased_row_sql(table: str, columns: dict[str, str], customer_id: bool = True) -> list[str]:
    """Boolean SQL conditions over a row `t`, each true for a row of an erased person (the
    line rule aside). Needs the file's index (_index_file): keys and values are compared as
    stored, against those of the file that hash into the suppression list."""
    terms = _terms(table, columns, customer_id)
    return (
        [f"{c} in {ERASED_IDS}" for c in terms.ids]
        + [f"{k} in (select k from temp.erased_keys)" for k in terms.keys]
        + [f"{v} in (select v from temp.erased_values)" for v in terms.values]
        + [f"{h} in {PEOPLE_HASHES}" for h in terms.hashes]
    )


# A listed e-mail (normalized) holds an @, a listed phone (E.164) starts with +: only such
# values are hashed, so names, streets and postcodes cost nothing.
def _candidate(value: str) -> str:
    return f"(contains({value}, '@') or starts_with(ltrim({value}), '+'))"


def _index_file(con: duckdb.DuckDBPyConnection, db: str) -> None:
    """temp.erased_keys(k) and temp.erased_values(v): the record keys and personal values of
    file `db` whose salted hash is listed, each distinct one hashed once for the whole file
    (the per-table tests are then plain comparisons)."""
    keys = ["select null::varchar as k where false"]
    values = ["select null::varchar as v where false"]
    for table, columns in _columns(con, db).items():
        if table.startswith("privacy."):
            continue
        terms = _terms(table, columns)
        source = f"{_quoted(db)}.{table} as t"
        keys += [f"select distinct {k} as k from {source}" for k in terms.keys]
        values += [
            f"select distinct {v} as v from {source} where {_candidate(v)}" for v in terms.values
        ]
    con.execute(
        "create or replace temp table erased_keys as select distinct k from ("
        + "\nunion all\n".join(keys)
        + f") where {pseudonym_sql('k')} in {RECORD_HASHES}"
    )
    con.execute(
        "create or replace temp table erased_values as select distinct v from ("
        + "\nunion all\n".join(values)
        + f") where {pseudonym_sql('v')} in {PEOPLE_HASHES}"
    )


def _any(conditions: list[str]) -> str:
    """True when any condition is (a null, e.g. of a null column, counts as false)."""
    if not conditions:
        return "false"
    return "(" + " or ".join(f"coalesce({c}, false)" for c in conditions) + ")"


def _collect_erased_lines(con: duckdb.DuckDBPyConnection, db: str) -> None:
    """temp.erased_lines(file, line): lines of delivered files that were an erased person's,
    from a main warehouse file `db`: its erased raw rows, and quarantined lines whose text
    holds an e-mail or a record id of theirs."""
    tables = _columns(con, db)
    selects = ["select null::varchar as file, null::bigint as line where false"]
    for table in sorted(_raw_record_keys()):
        columns = tables.get(table)
        if columns is None or "_file" not in columns or "_line" not in columns:
            continue
        selects.append(
            f"select t._file, t._line from {_quoted(db)}.{table} as t "
            f"where {_any(_erased_row_sql(table, columns))}"
        )
    quarantine = tables.get("quality.quarantine", {})
    if {"source", "file", "line", "raw"} <= set(quarantine):
        selects.append(
            f"""select distinct file, line from (
                select t.file, t.line, t.source, unnest(regexp_split_to_array(t.raw, {_literal(TOKEN_SEPARATORS)})) as token
                from {_quoted(db)}.quality.quarantine as t
            ) where coalesce({pseudonym_sql("token")} in {PEOPLE_HASHES}, false)
                or coalesce({pseudonym_sql("source || ':' || token")} in {RECORD_HASHES}, false)"""
        )
    con.execute(
        "create or replace temp table erased_lines as select distinct * from ("
        + "\nunion all\n".join(selects)
        + ")"
    )


def _line_sql(alias: str = "t") -> str:
    return (
        f"exists (select 1 from temp.erased_lines as e "
        f"where e.file = {alias}.file and e.line = {alias}.line)"
    )


def _rekey_map(con: duckdb.DuckDBPyConnection, db: str) -> None:
    """temp.rekey(customer_id, erased_customer_id): each erased customer id of file `db` and the
    pseudonymous id its records got, through the file's own identity.source_records."""
    if {"source", "source_record_id", "customer_id"} <= set(
        _columns(con, db).get("identity.source_records", {})
    ):
        con.execute(
            f"""create or replace temp table rekey as
            select s.customer_id, min(m.erased_customer_id) as erased_customer_id
            from {_quoted(db)}.identity.source_records as s
            join temp.erased_map as m using (source, source_record_id)
            where s.customer_id in {ERASED_IDS}
            group by s.customer_id"""
        )
    else:
        con.execute(
            "create or replace temp table rekey as "
            "select null::varchar as customer_id, null::varchar as erased_customer_id where false"
        )


def main_twin(path: str | Path) -> Path | None:
    """The main warehouse file an analytics file was built from (same run, same stamp);
    None when `path` is not an analytics file. omniloyal_analytics-<stamp>.duckdb ->
    omniloyal-<stamp>.duckdb; <run>.analytics.duckdb -> <run>.duckdb."""
    path = Path(path)
    name = path.name
    if name.endswith(".analytics.duckdb"):
        return path.with_name(name.removesuffix(".analytics.duckdb") + ".duckdb")
    match = re.fullmatch(r"(.+)_analytics((?:-[^/]+)?\.duckdb)", name)
    return path.with_name(match[1] + match[2]) if match else None


def is_analytics_file(path: str | Path) -> bool:
    return main_twin(path) is not None


def _prepare(con: duckdb.DuckDBPyConnection, db: str, path: Path, twin: Path | None) -> bool:
    """The temp tables a scrub or a search of file `db` needs. False when its quarantine and
    field issues cannot be matched by line (an analytics file without its main twin)."""
    lines_known = True
    if not is_analytics_file(path):
        _index_file(con, db)
        _collect_erased_lines(con, db)
    elif twin is not None and twin.exists():
        con.execute(f"attach {_literal(str(twin))} as twin (read_only)")
        try:
            _index_file(con, "twin")
            _collect_erased_lines(con, "twin")
        finally:
            con.execute("detach twin")
        _index_file(con, db)
    else:
        con.execute(
            "create or replace temp table erased_lines as "
            "select null::varchar as file, null::bigint as line where false"
        )
        _index_file(con, db)
        lines_known = False
    _rekey_map(con, db)
    return lines_known


def _table_plan(table: str, columns: dict[str, str], lines_known: bool) -> tuple[str, str | None]:
    """(condition of rows to delete, condition of rows to move to a pseudonym or None)."""
    if table in LINE_TABLES:
        delete = _line_sql() if lines_known else "true"
        return _any([delete] + _erased_row_sql(table, columns)), None
    if table in ACCOUNTING_TABLES and "customer_id" in columns:
        rekeyed = "t.customer_id in (select customer_id from temp.rekey)"
        unmapped = f"(t.customer_id in {ERASED_IDS} and not {rekeyed})"
        others = _erased_row_sql(table, columns, customer_id=False)
        return _any(others + [unmapped]), rekeyed
    return _any(_erased_row_sql(table, columns)), None


def scrub_warehouse_file(
    path: str | Path, erased: ErasedPeople, twin: str | Path | None = None
) -> FileScrub:
    """Remove the erased people from an older warehouse file (a previous version, or its
    analytics twin), rewriting it only when it holds any. For an analytics file, its main
    twin (default: the file of the same stamp beside it, main_twin) must not be scrubbed yet:
    its quarantine text tells which lines go (scrub_previous_versions does them in order).

    The kept rows are copied into a new file, which replaces the old one atomically with the
    same mode; a main file also gets the current privacy.* tables, so a rollback to it keeps
    every erasure (and its suppression list). Returns counts per table, never a value."""
    path = Path(path)
    result = FileScrub(path)
    if erased.is_empty:
        return result
    twin = Path(twin) if twin is not None else main_twin(path)
    partial = path.with_name(f".{path.name}.scrub.partial")
    partial.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        _load(con, erased)
        con.execute(f"attach {_literal(str(path))} as src (read_only)")
        lines_known = _prepare(con, "src", path, twin)
        tables = _columns(con, "src")
        plans = {t: _table_plan(t, cols, lines_known) for t, cols in tables.items()}
        plans = {t: p for t, p in plans.items() if not t.startswith("privacy.")}
        for table, (delete, rekey) in plans.items():
            counts = con.execute(
                f"select count(*) filter (where {delete}), "
                f"count(*) filter (where not {delete} and {rekey or 'false'}) "
                f"from src.{table} as t"
            ).fetchall()[0]
            if counts[0]:
                result.deleted[table] = counts[0]
            if counts[1]:
                result.rekeyed[table] = counts[1]
        if (result.deleted or result.rekeyed) and SAVED_TERM_FREQUENCIES in tables:
            # The saved model's name frequencies carry no record to match the person by: a
            # file that held the person loses them all (a rollback to it then trains afresh,
            # as every run after an erasure does: assets/identity/incremental.py).
            plans[SAVED_TERM_FREQUENCIES] = ("true", None)
            result.deleted[SAVED_TERM_FREQUENCIES] = con.execute(
                f"select count(*) from src.{SAVED_TERM_FREQUENCIES}"
            ).fetchall()[0][0]
        carry = "raw.deliveries" in tables and _privacy_tables_differ(con, tables, erased)
        if not result.deleted and not result.rekeyed and not carry:
            return result
        con.execute(f"attach {_literal(str(partial))} as dst")
        con.execute("copy from database src to dst (schema)")
        for table in tables:
            delete, rekey = plans.get(table, ("false", None))
            select = "t.*"
            join = ""
            if rekey is not None and table in result.rekeyed:
                select = (
                    "t.* replace (coalesce(r.erased_customer_id, t.customer_id) as customer_id)"
                )
                join = "left join temp.rekey as r on r.customer_id = t.customer_id"
            con.execute(
                f"insert into dst.{table} select {select} from src.{table} as t {join} where not {delete}"
            )
        if carry:
            result.privacy_tables_carried = _carry_privacy_tables(con, erased)
        con.execute("checkpoint dst")
        con.execute("detach dst")
        con.execute("detach src")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    shutil.copymode(path, partial)
    os.replace(partial, path)
    result.rewritten = True
    return result


def _privacy_tables_differ(
    con: duckdb.DuckDBPyConnection, tables: dict[str, dict[str, str]], erased: ErasedPeople
) -> bool:
    """True when file `src` lacks a current privacy table or holds another number of its rows."""
    for table, data in erased.privacy_tables.items():
        if table not in tables:
            return True
        if con.execute(f"select count(*) from src.{table}").fetchall()[0][0] != data.num_rows:
            return True
    return False


def _carry_privacy_tables(con: duckdb.DuckDBPyConnection, erased: ErasedPeople) -> int:
    con.execute("create schema if not exists dst.privacy")
    for table, data in erased.privacy_tables.items():
        con.register("privacy_arrow", data)
        con.execute(f"create or replace table dst.{table} as select * from privacy_arrow")
        con.unregister("privacy_arrow")
    return len(erased.privacy_tables)


def scrub_previous_versions(warehouse: Warehouse, erased: ErasedPeople) -> list[FileScrub]:
    """Scrub every version kept in previous/: each analytics file before its main twin (whose
    quarantine text it needs), then the main files."""
    results = [scrub_warehouse_file(p, erased) for p in warehouse.previous_analytics_versions()]
    results += [scrub_warehouse_file(p, erased) for p in warehouse.previous_versions()]
    return results


def remove_failed_builds(warehouse: Warehouse, current_run_id: str | None) -> list[Path]:
    """Delete every file in builds/ that is not the current run's: failed builds (they hold
    personal data), their analytics files, logs, markers and half copies. Call it holding the
    run lock, after the publish. A build another process has open for writing is left (and
    reported by find_erased_values_everywhere as unreadable). Returns what was removed."""
    removed: list[Path] = []
    if not warehouse.builds_dir.is_dir():
        return removed
    for path in sorted(warehouse.builds_dir.iterdir()):
        if current_run_id is not None and path.name.startswith(f"{current_run_id}."):
            continue
        if path.name.endswith(".duckdb") and writer_pid(path) is not None:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


# --- exports ---------------------------------------------------------------------------


def _export_sql(columns: list[str], alias: str = "t") -> list[str]:
    """Conditions true for an export row of an erased person, from the columns it has."""
    conditions = []
    for column in columns:
        q = f"{alias}.{_quoted(column)}"
        if column in EXPORT_ID_COLUMNS:
            conditions.append(f"{q} in {ERASED_IDS}")
        elif column == "email":
            conditions.append(f"{pseudonym_sql(q)} in {_listed(('email',))}")
        elif column == "phone_e164":
            conditions.append(f"{pseudonym_sql(q)} in {_listed(('phone',))}")
        elif column == "app_user_id":
            # a push audience's app account: the record app:<user_id>
            app_record = pseudonym_sql("'app:' || " + q)
            conditions.append(f"{app_record} in {RECORD_HASHES}")
    return conditions


def _reader(path: Path) -> str:
    if path.suffix == ".parquet":
        return f"read_parquet({_literal(str(path))})"
    return (
        f"read_csv({_literal(str(path))}, header = true, all_varchar = true, delim = ',', "
        "quote = '\"', escape = '\"')"
    )


def _export_files(exports_dir: Path) -> list[Path]:
    """Every published audience file: <exports>/<date>/*.csv and *.parquet (not hidden)."""
    if not exports_dir.is_dir():
        return []
    return sorted(
        path
        for folder in exports_dir.iterdir()
        if folder.is_dir() and not folder.name.startswith(".")
        for path in folder.iterdir()
        if path.is_file() and path.suffix in (".csv", ".parquet") and not path.name.startswith(".")
    )


def _manifest_entries(folder: Path) -> tuple[dict | None, dict[str, dict]]:
    """The folder's manifest and, per file name, the entry describing it."""
    path = folder / "manifest.json"
    if not path.is_file():
        return None, {}
    manifest = json.loads(path.read_text(encoding="utf-8"))
    by_file = {
        spec["file"]: entry
        for entry in manifest.get("files", [])
        for spec in entry["files"].values()
    }
    return manifest, by_file


def _written_at(path: Path, entry: dict | None) -> datetime:
    if entry is not None and entry.get("written_at"):
        return datetime.fromisoformat(entry["written_at"])
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _unmatchable_and_stale(
    path: Path, columns: list[str], entry: dict | None, erased: ErasedPeople
) -> bool:
    """A file no row of which can be tied to a person by what we keep (Google's hashed-only
    audience: plain SHA-256 of e-mail, phone and names), written before an erasure."""
    if _export_sql(columns):
        return False
    if erased.erased_since is None:
        return erased.customer_ids.num_rows > 0  # erased, when unknown: assume after
    return _written_at(path, entry) < erased.erased_since


@dataclass
class ExportsScrub:
    rewritten: dict[str, int] = field(default_factory=dict)  # <date>/<file> -> rows deleted
    removed: list[str] = field(default_factory=list)  # <date>/<file> deleted whole


def scrub_exports(exports_dir: str | Path, erased: ErasedPeople) -> ExportsScrub:
    """Remove the erased people from every audience file of every date under `exports_dir`.

    Plain audiences (CSV, Parquet) and Meta files are rewritten without the rows of an erased
    customer id (extern_id for Meta), e-mail, phone or app account. A Google file holds only
    plain SHA-256 of e-mail, phone and names: nothing we keep can tell its rows apart (we keep
    salted hashes, not the values to hash again), so one written before the latest erasure is
    deleted whole and listed under `removed_by_erasure` in its folder's manifest. Each
    touched folder's manifest.json is rewritten so its rows and sha256 describe the files on
    disk. Files are rewritten beside and renamed, like the exports themselves."""
    exports_dir = Path(exports_dir)
    result = ExportsScrub()
    if erased.is_empty:
        return result
    con = duckdb.connect()
    try:
        _load(con, erased)
        touched: dict[Path, dict[str, tuple[int, str] | None]] = {}
        for path in _export_files(exports_dir):
            _, by_file = _manifest_entries(path.parent)
            relation = con.sql(f"select * from {_reader(path)}")
            columns = relation.columns
            where = f"{path.parent.name}/{path.name}"
            if _unmatchable_and_stale(path, columns, by_file.get(path.name), erased):
                path.unlink()
                result.removed.append(where)
                touched.setdefault(path.parent, {})[path.name] = None
                continue
            erased_row = _any(_export_sql(columns))
            total, found = con.execute(
                f"select count(*), count(*) filter (where {erased_row}) from {_reader(path)} as t"
            ).fetchall()[0]
            if not found:
                continue
            _rewrite_export(con, path, erased_row)
            result.rewritten[where] = found
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            touched.setdefault(path.parent, {})[path.name] = (total - found, digest)
        for folder, files in touched.items():
            _rewrite_manifest(folder, files)
    finally:
        con.close()
    return result


def _rewrite_export(con: duckdb.DuckDBPyConnection, path: Path, erased_row: str) -> None:
    """`path` without the erased rows, written beside and renamed; a CSV keeps its byte-order
    mark when it had one (segment_files writes plain audiences with it, for Excel)."""
    partial = path.with_name(f".{path.name}.partial")
    kept = f"select t.* from {_reader(path)} as t where not {erased_row}"
    if path.suffix == ".parquet":
        # Through Arrow and pyarrow's writer, as segment_files writes them: the same schema.
        pq.write_table(con.sql(kept).to_arrow_table(), partial)
    else:
        with path.open("rb") as handle:
            bom = handle.read(3) == b"\xef\xbb\xbf"
        body = path.with_name(f".{path.name}.body.partial")
        # segment_files writes with Python's csv module: quotes only when needed, CRLF lines.
        con.execute(
            f"copy ({kept}) to {_literal(str(body))} (format csv, header, delimiter ',', "
            "quote '\"', escape '\"', new_line '\\r\\n')"
        )
        with partial.open("wb") as out, body.open("rb") as rows:
            if bom:
                out.write(b"\xef\xbb\xbf")
            shutil.copyfileobj(rows, out)
        body.unlink()
    shutil.copymode(path, partial)
    os.replace(partial, path)


def _rewrite_manifest(folder: Path, files: dict[str, tuple[int, str] | None]) -> None:
    """Rows and sha256 of rewritten files, removed files dropped from their entry (an entry
    left without files goes to `removed_by_erasure`, with when and why)."""
    manifest, _ = _manifest_entries(folder)
    if manifest is None:
        return
    now = datetime.now(UTC).isoformat(timespec="seconds")
    kept_entries = []
    removed = manifest.get("removed_by_erasure", [])
    for entry in manifest.get("files", []):
        specs = {}
        for kind, spec in entry["files"].items():
            change = files.get(spec["file"], "unchanged")
            if change is None:
                continue
            if change != "unchanged":
                entry["rows"], spec = change[0], {**spec, "sha256": change[1]}
            specs[kind] = spec
        if specs:
            kept_entries.append({**entry, "files": specs})
        else:
            removed.append(
                {
                    "segmentation": entry["segmentation"],
                    "segment": entry["segment"],
                    "platform": entry.get("platform"),
                    "files": sorted(spec["file"] for spec in entry["files"].values()),
                    "removed_at": now,
                    "reason": "written before an erasure and holds only plain SHA-256 hashes, "
                    "which cannot be matched to the erased people: re-export it from the current warehouse",
                }
            )
    manifest["files"] = kept_entries
    if removed:
        manifest["removed_by_erasure"] = removed
    manifest["scrubbed_at"] = now
    path = folder / "manifest.json"
    partial = path.with_name(".manifest.json.partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


# --- Splink's charts -------------------------------------------------------------------


def remove_record_level_charts(reports_dir: str | Path, keep_as_of: date | None) -> list[Path]:
    """Delete, in every <reports>/identity/<as-of>/ but `keep_as_of`'s, every file that is not a
    model-level chart (MODEL_LEVEL_CHARTS): the cluster studio shows records' values, the
    waterfall example pairs. Pass keep_as_of only when this run's identity step rewrote that
    folder after the erasure. Returns the files removed."""
    root = Path(reports_dir) / "identity"
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if keep_as_of is not None and folder.name == keep_as_of.isoformat():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name not in MODEL_LEVEL_CHARTS:
                path.unlink()
                removed.append(path)
    return removed


# --- the search ------------------------------------------------------------------------


@dataclass
class Leftovers:
    """Where rows of erased people remain: counts per place, never a value."""

    found: dict[str, int] = field(default_factory=dict)  # '<file>: <table>' or '<file>' -> rows
    unreadable: list[str] = field(default_factory=list)  # files open for writing elsewhere
    files_searched: int = 0

    @property
    def clean(self) -> bool:
        return not self.found and not self.unreadable


def warehouse_files(warehouse: Warehouse, skip: tuple[Path, ...] = ()) -> list[Path]:
    """Every warehouse file on disk: published main and analytics, previous versions, builds."""
    candidates = [warehouse.published_path, warehouse.analytics_path]
    candidates += warehouse.previous_versions() + warehouse.previous_analytics_versions()
    if warehouse.builds_dir.is_dir():
        candidates += sorted(warehouse.builds_dir.glob("*.duckdb"))
    skipped = {Path(p).resolve() for p in skip}
    return [p for p in candidates if p.exists() and p.resolve() not in skipped]


def find_erased_values_everywhere(
    warehouse: Warehouse,
    exports_dir: str | Path | None,
    erased: ErasedPeople,
    reports_dir: str | Path | None = None,
    keep_as_of: date | None = None,
    skip: tuple[Path, ...] = (),
) -> Leftovers:
    """Search every warehouse file (published, analytics, previous/, builds/) and every export
    file for rows of an erased person, by the same rules the scrubbing uses; with
    `reports_dir`, record-level Splink charts of dates other than `keep_as_of` count as found.
    `skip` names files searched elsewhere (the run's own build, which its check searches).
    Accounting rows under an erased id that a scrub would move to a pseudonym count as found."""
    leftovers = Leftovers()
    if erased.is_empty:
        return leftovers
    con = duckdb.connect()
    try:
        _load(con, erased)
        for path in warehouse_files(warehouse, skip):
            if writer_pid(path) is not None:
                leftovers.unreadable.append(str(path))
                continue
            leftovers.files_searched += 1
            con.execute(f"attach {_literal(str(path))} as searched (read_only)")
            try:
                lines_known = _prepare(con, "searched", path, main_twin(path))
                for table, columns in _columns(con, "searched").items():
                    if table.startswith("privacy."):
                        continue
                    delete, rekey = _table_plan(table, columns, lines_known)
                    found = con.execute(
                        f"select count(*) filter (where {delete} or {rekey or 'false'}) "
                        f"from searched.{table} as t"
                    ).fetchall()[0][0]
                    if found:
                        leftovers.found[f"{path}: {table}"] = found
            finally:
                con.execute("detach searched")
        for path in _export_files(Path(exports_dir)) if exports_dir is not None else []:
            leftovers.files_searched += 1
            _, by_file = _manifest_entries(path.parent)
            relation = con.sql(f"select * from {_reader(path)}")
            if _unmatchable_and_stale(path, relation.columns, by_file.get(path.name), erased):
                found = con.execute(f"select count(*) from {_reader(path)}").fetchall()[0][0]
            else:
                found = con.execute(
                    f"select count(*) from {_reader(path)} as t where {_any(_export_sql(relation.columns))}"
                ).fetchall()[0][0]
            if found:
                leftovers.found[str(path)] = found
    finally:
        con.close()
    if reports_dir is not None:
        root = Path(reports_dir) / "identity"
        for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
            if keep_as_of is not None and folder.name == keep_as_of.isoformat():
                continue
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.name not in MODEL_LEVEL_CHARTS:
                    leftovers.found[str(path)] = 1
    return leftovers
