"""The warehouse catalog: every table's documented columns, read from schemas/warehouse/*.yaml.

Raw tables of contract files are documented once, generically: their columns are the
contract's (schemas/sources/) plus the bookkeeping columns declared in raw.yaml.

What is derived from it, so that no other place repeats a table's facts: the masking of
personal columns (assets/shared/privacy.py), the DuckDB comments of each built table
(comment_on_table) and the column schema Dagster's catalog shows (assets/shared/sql_assets.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import duckdb
import yaml

from assets.ingest.contract import SCHEMAS_DIR, source_files

CONTRACT_TYPES = {
    "string": "varchar",
    "enum": "varchar",
    "integer": "bigint",
    "decimal": "decimal(18,2)",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
}


@dataclass(frozen=True)
class DocumentedColumn:
    name: str
    type: str
    description: str
    pii: bool


@dataclass(frozen=True)
class DocumentedTable:
    description: str
    columns: tuple[DocumentedColumn, ...]
    # False for a working step of the pipeline (matching keys, point lots before settling):
    # the analytics warehouse leaves it out, as it holds what analysts query.
    for_analysts: bool = True


@cache
def documented() -> dict[str, DocumentedTable]:
    """'schema.table' -> its description and its columns in order."""
    tables: dict[str, DocumentedTable] = {}
    for path in sorted((SCHEMAS_DIR / "warehouse").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        schema = doc["schema"]
        for table, spec in (doc.get("tables") or {}).items():
            columns = tuple(
                _column(name, c, f"{path.name}: {table}") for name, c in spec["columns"].items()
            )
            unknown = sorted(set(spec) - TABLE_KEYS)
            if unknown:
                raise ValueError(
                    f"{path.name}: {table}: unknown keys {', '.join(map(str, unknown))}"
                )
            tables[f"{schema}.{table}"] = DocumentedTable(
                " ".join(str(spec.get("description", "")).split()),
                columns,
                bool(spec.get("for_analysts", True)),
            )
        if "contract_tables" in doc:
            bookkeeping = tuple(
                _column(name, c, f"{path.name}: contract_tables")
                for name, c in doc["contract_tables"]["columns"].items()
            )
            for spec in source_files():
                contract = tuple(
                    DocumentedColumn(
                        c.name,
                        CONTRACT_TYPES[c.type],
                        f"as delivered ({spec.source} {spec.entity})",
                        c.pii,
                    )
                    for c in spec.columns
                )
                description = f"{spec.description} Every delivered row, as typed by the contract (schemas/sources/{spec.source}.yaml)."
                tables[f"{schema}.{spec.table}"] = DocumentedTable(
                    description, contract + bookkeeping
                )
    return tables


def documented_tables() -> dict[str, tuple[DocumentedColumn, ...]]:
    """'schema.table' -> its columns in order."""
    return {table: doc.columns for table, doc in documented().items()}


COLUMN_KEYS = {"type", "description", "pii"}
TABLE_KEYS = {"description", "columns", "for_analysts"}


def _column(name: str, spec: dict, where: str) -> DocumentedColumn:
    # In a flow mapping `{type: varchar, description: web, app or store}` the commas end the
    # description ("web") and make keys of the rest: such a description must be quoted.
    unknown = sorted(set(spec) - COLUMN_KEYS)
    if unknown:
        raise ValueError(
            f"{where}.{name}: unknown keys {', '.join(map(str, unknown))} "
            "(a description with a comma must be quoted)"
        )
    return DocumentedColumn(
        name, str(spec["type"]).lower(), spec.get("description", ""), bool(spec.get("pii", False))
    )


def comment_on_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Put a table's documented description and its columns' on it as DuckDB comments, so
    that an analyst's SQL client shows them (duckdb_tables(), duckdb_columns()).

    A table schemas/ does not document is left without; a documented column the table
    lacks is skipped (tests/test_end_to_end.py checks tables and documentation agree).
    """
    doc = documented().get(table)
    if doc is None:
        return
    schema, name = table.split(".")
    present = {
        c
        for (c,) in con.execute(
            "select column_name from duckdb_columns() where schema_name = ? and table_name = ?",
            [schema, name],
        ).fetchall()
    }
    con.execute(f"comment on table {table} is {_literal(doc.description)}")
    for column in doc.columns:
        if column.name in present:
            marker = " [personal data]" if column.pii else ""
            con.execute(
                f'comment on column {table}."{column.name}" is {_literal(column.description + marker)}'
            )


def comment_on_uncommented_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Comment every documented table that has no comment yet; returns those tables.

    run_model comments the tables of SQL models as it builds them; tables a Python step
    writes itself (model fits, Splink's output, the program's tables) are caught here,
    when a step closes its connection to the build.
    """
    uncommented = [
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where database_name = current_database() and comment is null"
        ).fetchall()
    ]
    tables = [table for table in uncommented if table in documented()]
    for table in tables:
        comment_on_table(con, table)
    return tables


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def personal_columns(table: str) -> set[str]:
    """Columns of a table that hold personal data; unknown tables are treated as all personal."""
    columns = documented_tables().get(table)
    if columns is None:
        raise KeyError(f"{table} is not documented in schemas/warehouse/")
    return {c.name for c in columns if c.pii}
