"""The warehouse engine: the one place that knows the data lives in DuckDB.

A run never writes to the published file. Its first step copies the published
warehouse to `builds/<run_id>.duckdb`; every step of that run writes there;
the last step publishes it with an atomic rename, keeping earlier versions in
`previous/` for rollback. Analysts reading the published file are never shown
half-built tables, and a failed run leaves the published file as it was.

Models are `.sql` files under assets/sql/<schema>/<table>.sql holding one
`select`; `run_model` turns one into the table it is named after.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from pipelines.defaults import BUNDLED_BLOCKED_IDENTIFIERS

SQL_DIR = Path(__file__).resolve().parent / "sql"
SCHEMAS = ("raw", "staging", "identity", "core", "loyalty", "marts", "quality")


class Warehouse:
    def __init__(self, published_path: str | Path, keep_versions: int = 5):
        self.published_path = Path(published_path)
        self.keep_versions = keep_versions

    @property
    def builds_dir(self) -> Path:
        return self.published_path.parent / "builds"

    @property
    def previous_dir(self) -> Path:
        return self.published_path.parent / "previous"

    def build_path(self, run_id: str) -> Path:
        return self.builds_dir / f"{run_id}.duckdb"

    @contextmanager
    def build(self, run_id: str, variables: Mapping[str, object] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to this run's build file, created from the published warehouse on first use."""
        path = self.build_path(run_id)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            if self.published_path.exists():
                # Copy to a temporary name first so a crash mid-copy never leaves a torn build.
                partial = path.with_suffix(".partial")
                shutil.copyfile(self.published_path, partial)
                os.replace(partial, path)
        con = connect(path, variables)
        try:
            yield con
        finally:
            con.close()

    def publish(self, run_id: str) -> Path:
        """Atomically replace the published warehouse by this run's build; keep the old one."""
        build = self.build_path(run_id)
        if not build.exists():
            raise FileNotFoundError(f"{build}: no build of run {run_id} to publish")
        self.published_path.parent.mkdir(parents=True, exist_ok=True)
        if self.published_path.exists():
            self.previous_dir.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            # A hard link keeps the old version without copying it; readers that hold the
            # published file open keep reading the old inode after the rename below.
            os.link(self.published_path, self.previous_dir / f"{self.published_path.stem}-{stamp}.duckdb")
        os.replace(build, self.published_path)
        self._prune()
        return self.published_path

    def previous_versions(self) -> list[Path]:
        return sorted(self.previous_dir.glob("*.duckdb"))

    def _prune(self, stale_build_age_s: float = 2 * 86400) -> None:
        versions = self.previous_versions()
        for old in versions[: max(0, len(versions) - self.keep_versions)]:
            old.unlink()
        # Builds of failed runs are kept for a while for debugging, then removed.
        for build in self.builds_dir.glob("*.duckdb"):
            if time.time() - build.stat().st_mtime > stale_build_age_s:
                build.unlink()


# Variables the identity models read, for connections made outside a run (tests, benchmarks).
DEFAULT_VARIABLES = {
    "blocked_identifiers_file": str(BUNDLED_BLOCKED_IDENTIFIERS),
    "max_people_per_identifier": 10,
}


def connect(path: str | Path, variables: Mapping[str, object] | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open a warehouse file with the schemas created and the run's variables set."""
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("set TimeZone = 'UTC'")
    if not read_only:
        for schema in SCHEMAS:
            con.execute(f"create schema if not exists {schema}")
    for name, value in {**DEFAULT_VARIABLES, **(variables or {})}.items():
        set_variable(con, name, value)
    return con


def set_variable(con: duckdb.DuckDBPyConnection, name: str, value: object) -> None:
    """Expose a run setting (as-of date, phone region, ...) to SQL models as getvariable(name)."""
    if not name.isidentifier():
        raise ValueError(f"invalid variable name {name!r}")
    if isinstance(value, date) and not isinstance(value, datetime):
        con.execute(f"set variable {name} = ?::date", [value.isoformat()])
    else:
        con.execute(f"set variable {name} = ?", [value])


def model_sql(model: str) -> str:
    """The select of a model such as 'staging/web_customers'."""
    return (SQL_DIR / f"{model}.sql").read_text(encoding="utf-8")


def run_model(con: duckdb.DuckDBPyConnection, model: str) -> int:
    """Build the table a model file is named after (assets/sql/core/customers.sql -> core.customers).

    Returns the table's row count.
    """
    schema, table = model.split("/")
    con.execute(f"create or replace table {schema}.{table} as\n{model_sql(model)}")
    return row_count(con, f"{schema}.{table}")


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"select count(*) from {table}").fetchall()[0][0]


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchall()[0][0]
    return found > 0
