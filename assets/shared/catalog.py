"""The warehouse catalog: every table's documented columns, read from schemas/warehouse/*.yaml.

Raw tables of contract files are documented once, generically: their columns are the
contract's (schemas/sources/) plus the bookkeeping columns declared in raw.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import yaml

from assets.ingest.contract import SCHEMAS_DIR, source_files

CONTRACT_TYPES = {
    "string": "varchar", "enum": "varchar", "integer": "bigint", "decimal": "decimal(18,2)",
    "boolean": "boolean", "date": "date", "timestamp": "timestamp",
}


@dataclass(frozen=True)
class DocumentedColumn:
    name: str
    type: str
    description: str
    pii: bool


@cache
def documented_tables() -> dict[str, tuple[DocumentedColumn, ...]]:
    """'schema.table' -> its columns in order."""
    tables: dict[str, tuple[DocumentedColumn, ...]] = {}
    for path in sorted((SCHEMAS_DIR / "warehouse").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        schema = doc["schema"]
        for table, spec in (doc.get("tables") or {}).items():
            tables[f"{schema}.{table}"] = tuple(_column(name, c) for name, c in spec["columns"].items())
        if "contract_tables" in doc:
            bookkeeping = tuple(_column(name, c) for name, c in doc["contract_tables"]["columns"].items())
            for spec in source_files():
                contract = tuple(
                    DocumentedColumn(c.name, CONTRACT_TYPES[c.type], f"as delivered ({spec.source} {spec.entity})", c.pii)
                    for c in spec.columns
                )
                tables[f"{schema}.{spec.table}"] = contract + bookkeeping
    return tables


def _column(name: str, spec: dict) -> DocumentedColumn:
    return DocumentedColumn(name, str(spec["type"]).lower(), spec.get("description", ""), bool(spec.get("pii", False)))


def personal_columns(table: str) -> set[str]:
    """Columns of a table that hold personal data; unknown tables are treated as all personal."""
    columns = documented_tables().get(table)
    if columns is None:
        raise KeyError(f"{table} is not documented in schemas/warehouse/")
    return {c.name for c in columns if c.pii}
