"""The proof that erasure reached everything: no identifier of an erased person left.

For every completed request, privacy.suppressed_identifiers holds the salted hashes of what
identified the person (e-mails and phones nobody else holds, and every erased record's
`source:record id`). This search hashes, set-based, in the run's build and its analytics file:

- every personal column (catalog pii flags) of every table, raw included: the value as it
  is, and for a raw phone column the phone standardized as staging reads it (a delivered
  '07700 900123' is the listed '+447700900123'), found in the e-mail or phone hashes;
- every record key of a table that holds personal columns (a customer-record table: raw
  customer files by their key, staging, identity and core tables by source and
  source_record_id or unique_id), found in the record hashes;
- every `_hash` column of the analytics file, found in the e-mail or phone hashes.

Orders, transactions and app events keep their record id on purpose (accounting, under a
pseudonymous customer: privacy.erased_records); they hold no personal column, so they are
not searched for record ids. Problems name a table, a column and a count, never a value.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from assets.ingest.contract import source_files
from assets.ingest.suppression import TABLE as SUPPRESSED
from assets.ingest.suppression import customer_record_file, record_hash_sql
from assets.shared.catalog import documented, personal_columns
from assets.shared.pseudonyms import pseudonym_sql
from assets.shared.warehouse import table_exists

SEARCHED_SCHEMAS = ("raw", "staging", "identity", "core", "loyalty", "marts", "quality")
ATTACHED = "erasure_check_analytics"


def _listed(kinds: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{kind}'" for kind in kinds)
    return f"(select identifier_hash from {SUPPRESSED} where kind in ({quoted}))"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _build_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    schemas = ", ".join(f"'{schema}'" for schema in SEARCHED_SCHEMAS)
    rows = con.execute(
        f"""
        select schema_name || '.' || table_name, list(column_name order by column_index)
        from duckdb_columns()
        where database_name = current_database() and schema_name in ({schemas})
        group by all order by 1
        """
    ).fetchall()
    return {table: columns for table, columns in rows}


def erasure_leftovers(
    con: duckdb.DuckDBPyConnection, analytics_path: str | Path | None = None
) -> list[str]:
    """Every place an erased person's identifier is still found; empty when none.

    Needs the pseudonym salt and the standardizing UDFs on the connection."""
    if not table_exists(con, SUPPRESSED):
        return []
    if not con.execute(f"select count(*) from {SUPPRESSED}").fetchall()[0][0]:
        return []
    problems: list[str] = []

    def count(table: str, expression: str, kinds: tuple[str, ...]) -> int:
        return con.execute(
            f"select count(*) from {table} where {expression} in {_listed(kinds)}"
        ).fetchall()[0][0]

    record_keys = {
        f"raw.{spec.table}": (spec.source, spec.key[0])
        for spec in source_files()
        if customer_record_file(spec.source) == spec
    }
    docs = documented()
    for table, columns in _build_tables(con).items():
        if table not in docs:
            continue  # undocumented tables fail the analytics build already
        personal = [c for c in columns if c in personal_columns(table)]
        for column in personal:
            found = count(table, pseudonym_sql(_quoted(column)), ("email", "phone"))
            if table.startswith("raw.") and column == "phone":
                country = ", country" if "country" in columns else ""
                found += count(
                    table,
                    pseudonym_sql(f"standardize_phone(phone{country})"),
                    ("phone",),
                )
            if found:
                problems.append(
                    f"{table}.{column}: {found} rows carry an erased person's e-mail or phone"
                )
        if not personal:
            continue
        keys = []
        if table in record_keys:
            source, key = record_keys[table]
            keys.append((key, record_hash_sql(f"'{source}'", _quoted(key))))
        if {"source", "source_record_id"} <= set(columns):
            keys.append(("source_record_id", record_hash_sql("source", "source_record_id")))
        keys += [(c, pseudonym_sql(_quoted(c))) for c in columns if c.startswith("unique_id")]
        for column, hashed in keys:
            found = count(table, hashed, ("record",))
            if found:
                problems.append(f"{table}.{column}: {found} rows of an erased record")
    if analytics_path is not None and Path(analytics_path).exists():
        con.execute(f"attach '{analytics_path}' as {ATTACHED} (read_only)")
        try:
            hash_columns = con.execute(
                f"select schema_name || '.' || table_name, column_name from duckdb_columns() "
                f"where database_name = '{ATTACHED}' and column_name like '%\\_hash' escape '\\' order by 1, 2"
            ).fetchall()
            for table, column in hash_columns:
                found = count(f"{ATTACHED}.{table}", _quoted(column), ("email", "phone"))
                if found:
                    problems.append(
                        f"analytics {table}.{column}: {found} rows carry an erased person's e-mail or phone hash"
                    )
        finally:
            con.execute(f"detach {ATTACHED}")
    return problems
