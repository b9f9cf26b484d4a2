"""The export contract, read from schemas/sources/*.yaml.

Everything the pipeline knows about a source file (where it lives, its format,
its columns, their types and formats, the key) comes from here, so the contract
is declared once, as data, and never repeated in code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = PROJECT_ROOT / "schemas"

COLUMN_TYPES = {"string", "integer", "decimal", "boolean", "date", "timestamp", "enum"}
FILE_FORMATS = {"csv", "jsonl"}
# A delivery's date is the `_YYYYMMDD` in its file name; deliveries are ordered by it.
DELIVERY_DATE = re.compile(r"_(\d{8})(?=\.)")


class ContractError(ValueError):
    """The contract files themselves are inconsistent."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    format: str | None = None
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    pii: bool = False


@dataclass(frozen=True)
class SourceFile:
    """One kind of file a source delivers, e.g. web customers."""

    source: str
    entity: str
    description: str
    pattern: str
    format: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    # `table:` in the contract, when the tables are not named <source>_<entity>.
    table_name: str | None = None
    # False for a file kind that names no customer record of its own (erasure requests):
    # the suppression list never drops its rows (assets/ingest/suppression.py).
    customer_records: bool = True
    # `require_one_of:` groups of columns of which at least one group must be all given,
    # else the row is quarantined (an erasure request must identify somebody).
    require_one_of: tuple[tuple[str, ...], ...] = ()
    # `identified_by_contact:` true for a file kind whose rows name a person only by e-mail
    # or phone without being customer records (partner sales): ingestion drops its rows
    # carrying a suppressed e-mail or phone, and erasure deletes those held.
    identified_by_contact: bool = False

    @property
    def table(self) -> str:
        """Name of the raw table (and of the staging table) for this file kind."""
        return self.table_name or f"{self.source}_{self.entity}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def matches(self, relative_path: str) -> bool:
        """True if an inbox path (relative, with '/') is a delivery of this kind, gzipped or not."""
        plain = relative_path[:-3] if relative_path.endswith(".gz") else relative_path
        return Path(plain).match(self.pattern)


def _parse_column(raw: dict, where: str) -> Column:
    if raw.get("type") not in COLUMN_TYPES:
        raise ContractError(
            f"{where}: column {raw.get('name')!r} has unknown type {raw.get('type')!r}"
        )
    if raw["type"] == "enum" and not raw.get("values"):
        raise ContractError(f"{where}: enum column {raw['name']!r} lists no values")
    return Column(
        name=raw["name"],
        type=raw["type"],
        required=bool(raw.get("required", False)),
        format=raw.get("format"),
        values=tuple(raw.get("values", ())),
        min=raw.get("min"),
        max=raw.get("max"),
        pii=bool(raw.get("pii", False)),
    )


def load_source(path: Path) -> list[SourceFile]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    files = []
    for entity, spec in doc["files"].items():
        where = f"{path.name}: {entity}"
        if spec.get("format") not in FILE_FORMATS:
            raise ContractError(f"{where}: unknown format {spec.get('format')!r}")
        columns = tuple(_parse_column(c, where) for c in spec["columns"])
        names = {c.name for c in columns}
        missing_key = [k for k in spec["key"] if k not in names]
        if missing_key:
            raise ContractError(f"{where}: key columns {missing_key} are not declared")
        one_of = tuple(tuple(group) for group in spec.get("require_one_of") or ())
        undeclared = sorted({c for group in one_of for c in group} - names)
        if undeclared:
            raise ContractError(f"{where}: require_one_of names undeclared columns {undeclared}")
        files.append(
            SourceFile(
                source=doc["source"],
                entity=entity,
                description=spec.get("description", ""),
                pattern=spec["pattern"],
                format=spec["format"],
                key=tuple(spec["key"]),
                columns=columns,
                table_name=spec.get("table"),
                customer_records=bool(spec.get("customer_records", True)),
                require_one_of=one_of,
                identified_by_contact=bool(spec.get("identified_by_contact", False)),
            )
        )
    return files


@cache
def source_files() -> tuple[SourceFile, ...]:
    """Every file kind of every source, in a stable order."""
    files: list[SourceFile] = []
    for path in sorted((SCHEMAS_DIR / "sources").glob("*.yaml")):
        files.extend(load_source(path))
    return tuple(files)


@cache
def source_priority() -> tuple[str, ...]:
    """Source names, most trusted first, by each contract's `profile_priority`.

    core.customers reads it (as the SQL variable `source_priority`) to break ties between
    values stated on the same day.
    """
    ranked = []
    for path in sorted((SCHEMAS_DIR / "sources").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        rank = doc.get("profile_priority")
        if rank is None and "profile_priority" in doc:
            continue  # stated as null: the source holds no customer records (privacy.yaml)
        if not isinstance(rank, int) or isinstance(rank, bool):
            raise ContractError(
                f"{path.name}: profile_priority must be a whole number, got {rank!r}"
            )
        ranked.append((rank, doc["source"]))
    ranks = [rank for rank, _ in ranked]
    if len(set(ranks)) != len(ranks):
        raise ContractError(f"profile_priority must differ between sources, got {sorted(ranked)}")
    return tuple(source for _, source in sorted(ranked))


def source_file(table: str) -> SourceFile:
    for spec in source_files():
        if spec.table == table:
            return spec
    raise KeyError(f"no contract file kind named {table!r}")


def classify(relative_path: str) -> SourceFile | None:
    """The contract file kind an inbox path belongs to, or None if it is not a contract file."""
    for spec in source_files():
        if spec.matches(relative_path):
            return spec
    return None


def delivery_date(file_name: str) -> str | None:
    """The YYYYMMDD delivery date in a file name, or None when it has none."""
    match = DELIVERY_DATE.search(Path(file_name).name)
    return match.group(1) if match else None
