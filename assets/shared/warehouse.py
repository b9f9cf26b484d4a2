"""The warehouse engine: the one place that knows the data lives in DuckDB.

A run never writes to the published file. Its first step copies the published
warehouse to `builds/<run_id>.duckdb`; every step of that run writes there;
the last step publishes it with an atomic rename, keeping earlier versions in
`previous/` for rollback. Analysts reading the published file are never shown
half-built tables, and a failed run leaves the published file as it was.

Each run also builds the analytics warehouse, `<name>_analytics.duckdb` beside the
published file (assets/privacy/, docs/privacy.md), as `builds/<run_id>.analytics.duckdb`;
the publish puts it in place right after the main file, and a run killed between the two
renames is finished by the next run's start (finish_interrupted_publish), so a main file
and an analytics file of different runs are never left side by side.

The publish refuses, replacing nothing, when the published file is not the one the
run copied (another run or process replaced or wrote it: publishing would drop
what that one added) or when another process has it open for writing (its writes
would land in the replaced file, and its write-ahead log beside the new one).
One run at a time holds the warehouse's lock (assets/shared/run_lock.py); these checks
are what keeps data safe even when something works on the file without the lock.

Models are `.sql` files, assets/<stage>/sql/<table>.sql, each holding one `select`;
`run_model` turns one into the table it is named after (model 'staging/web_customers' is
assets/staging/sql/web_customers.sql and builds staging.web_customers).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import struct
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from assets.shared.catalog import comment_on_table, comment_on_uncommented_tables
from assets.shared.defaults import BUNDLED_BLOCKED_IDENTIFIERS

ASSETS_DIR = Path(__file__).resolve().parents[1]
# The macros every model may use, loaded on every warehouse connection of a run.
MACROS_FILE = Path(__file__).resolve().parent / "macros.sql"
# A model's file is assets/<stage>/sql/<table>.sql; the stage is named after the schema,
# except quality's tables, which ingestion builds.
SCHEMA_STAGES = {"quality": "ingest"}
SCHEMAS = ("raw", "staging", "identity", "core", "loyalty", "marts", "quality")
# Builds of failed runs are kept this long for debugging, or retention_days when shorter:
# they hold personal data and serve nothing once the failure is understood.
STALE_BUILD_AGE_S = 2 * 86400
# Splink's scratch database during matching (assets/identity/matching.py splink_connection).
SPLINK_SCRATCH_PREFIX = "omniloyal-splink-"
SPLINK_SCRATCH_FILE = "splink.duckdb"
DAY_S = 86400


class WarehouseError(RuntimeError):
    """The published warehouse cannot be copied or replaced; the message says why and that nothing changed."""


class Warehouse:
    def __init__(
        self,
        published_path: str | Path,
        keep_versions: int = 5,
        retention_days: int | None = None,
        duckdb_config: Mapping[str, str] | None = None,
    ):
        # DuckDB settings of the build's connections (memory_limit, temp_directory).
        self.duckdb_config = dict(duckdb_config or {})
        if keep_versions < 0:
            # -1 once pruned every earlier version: rollback needs keep_versions >= 0.
            raise ValueError(
                f"keep_versions must be 0 or more (earlier versions kept in previous/), got {keep_versions}"
            )
        if retention_days is not None and retention_days < 1:
            raise ValueError(f"retention_days must be 1 or more, got {retention_days}")
        self.published_path = Path(published_path)
        self.keep_versions = keep_versions
        # None: no age limit on previous versions (failed builds: STALE_BUILD_AGE_S).
        self.retention_days = retention_days

    @property
    def stale_build_age_s(self) -> float:
        """How long a failed run's build is kept: two days for debugging, or retention_days when shorter."""
        if self.retention_days is None:
            return STALE_BUILD_AGE_S
        return min(STALE_BUILD_AGE_S, self.retention_days * DAY_S)

    @property
    def builds_dir(self) -> Path:
        return self.published_path.parent / "builds"

    @property
    def previous_dir(self) -> Path:
        return self.published_path.parent / "previous"

    def build_path(self, run_id: str) -> Path:
        return self.builds_dir / f"{run_id}.duckdb"

    @property
    def analytics_path(self) -> Path:
        """The published analytics warehouse: data/warehouse/omniloyal_analytics.duckdb for the default."""
        return self.published_path.with_name(f"{self.published_path.stem}_analytics.duckdb")

    def analytics_build_path(self, run_id: str) -> Path:
        return self.builds_dir / f"{run_id}.analytics.duckdb"

    def publishing_marker(self, run_id: str) -> Path:
        """Written just before the swap: which build goes out, for finish_interrupted_publish."""
        return self.builds_dir / f"{run_id}.publishing.json"

    @contextmanager
    def build(
        self, run_id: str, variables: Mapping[str, object] | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to this run's build file, created from the published warehouse on first use."""
        path = self.build_path(run_id)
        if not path.exists():
            self._copy_published(run_id)
        con = connect(path, variables, config=self.duckdb_config)
        try:
            yield con
            # Tables a step wrote without run_model get their documentation as comments too.
            comment_on_uncommented_tables(con)
        finally:
            con.close()

    def compaction_marker(self, run_id: str) -> Path:
        """Present when a step of the run deleted personal data from the build (an erasure, a
        retention purge): the build is rewritten as a fresh file before it is published."""
        return self.builds_dir / f"{run_id}.compact"

    def request_compaction(self, run_id: str) -> None:
        self.compaction_marker(run_id).parent.mkdir(parents=True, exist_ok=True)
        self.compaction_marker(run_id).touch()

    def compact_build(self, run_id: str) -> bool:
        """Rewrite this run's build as a fresh file when a step asked for it; True if it did.

        DuckDB deletes rows by marking them, and the blocks they were in are reused, not wiped:
        the bytes of an erased person stay in the file until overwritten. COPY FROM DATABASE
        writes only the live rows (with comments, macros and views) into a new file, which
        replaces the build; the published file never held them, as it is this new one.
        """
        marker = self.compaction_marker(run_id)
        if not marker.exists():
            return False
        build = self.build_path(run_id)
        fresh = build.with_name(build.name + ".compact.partial")
        fresh.unlink(missing_ok=True)
        con = duckdb.connect(config=self.duckdb_config)
        try:
            con.execute(f"attach '{build}' as compacted_source (read_only)")
            con.execute(f"attach '{fresh}' as compacted")
            con.execute("copy from database compacted_source to compacted")
            con.execute("detach compacted")
            con.execute("detach compacted_source")
        finally:
            con.close()
        os.replace(fresh, build)
        marker.unlink()
        return True

    def source_path(self, run_id: str) -> Path:
        """Which published file the run's build was copied from (its identity), for the publish check."""
        return self.builds_dir / f"{run_id}.source.json"

    def _copy_published(self, run_id: str) -> None:
        path = self.build_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        source = None
        if self.published_path.exists():
            self.refuse_if_written("copy")
            # Copy to a temporary name first so a crash mid-copy never leaves a torn build.
            partial = path.with_suffix(".partial")
            # Identity of the file actually read, taken on the open descriptor: a publish
            # renaming another file in during the copy cannot mix the two up.
            with self.published_path.open("rb") as published, partial.open("wb") as copy:
                source = file_identity(os.fstat(published.fileno()))
                shutil.copyfileobj(published, copy, 16 << 20)
                if file_identity(os.fstat(published.fileno())) != source:
                    partial.unlink()
                    raise WarehouseError(
                        f"{self.published_path} was written while this run copied it; "
                        f"nothing was changed: run again"
                    )
            self.source_path(run_id).write_text(
                json.dumps({"published": source}) + "\n", encoding="utf-8"
            )
            os.replace(partial, path)
        else:
            self.source_path(run_id).write_text(
                json.dumps({"published": None}) + "\n", encoding="utf-8"
            )

    def publish(self, run_id: str) -> Path:
        """Atomically replace the published warehouse by this run's build, then the analytics
        warehouse by this run's; keep the old ones.

        WarehouseError, with nothing replaced, when the published file is being written or
        is not the one this run copied, or when an analytics warehouse is published but this
        run built none (publishing would leave it beside a main file of another run).
        """
        build = self.build_path(run_id)
        if not build.exists():
            raise FileNotFoundError(f"{build}: no build of run {run_id} to publish")
        self.refuse_if_written("replace")
        analytics = self.analytics_build_path(run_id)
        if not analytics.exists() and self.analytics_path.exists():
            raise WarehouseError(
                f"{analytics}: run {run_id} built no analytics warehouse, and publishing without one would "
                f"leave {self.analytics_path} of an earlier run beside it; nothing was replaced: "
                f"materialize analytics_warehouse in the same run"
            )
        if analytics.exists() and writer_pid(self.analytics_path) is not None:
            raise WarehouseError(
                f"{self.analytics_path} is open for writing by another process, so a run cannot replace it; "
                f"nothing was replaced. Close that connection (readers should open it read_only) and run again"
            )
        try:
            copied = json.loads(self.source_path(run_id).read_text(encoding="utf-8"))["published"]
        except (FileNotFoundError, ValueError, KeyError):
            raise WarehouseError(
                f"{self.source_path(run_id)}: no record of the file run {run_id} copied; "
                f"nothing was replaced"
            ) from None
        current = (
            file_identity(self.published_path.stat()) if self.published_path.exists() else None
        )
        if current != copied:
            raise WarehouseError(
                f"{self.published_path} changed since this run copied it (another run or process published or wrote it); "
                f"nothing was replaced, so nothing it holds is lost: run again to build on it"
            )
        self.published_path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        marker = self.publishing_marker(run_id)
        if analytics.exists():
            # After the rename below the published file keeps the build's inode, size and
            # mtime: the next run's start can tell this build went out and its analytics did not.
            partial = marker.with_name(marker.name + ".partial")
            partial.write_text(
                json.dumps({"build": file_identity(build.stat()), "stamp": stamp}) + "\n",
                encoding="utf-8",
            )
            os.replace(partial, marker)
        self._replace(build, self.published_path, stamp)
        if analytics.exists():
            self._replace(analytics, self.analytics_path, stamp)
            marker.unlink()
        self.source_path(run_id).unlink(missing_ok=True)
        self._prune()
        return self.published_path

    def _replace(self, new: Path, published: Path, stamp: str) -> None:
        """Rename `new` over `published`, first keeping the old one as previous/<stem>-<stamp>.duckdb."""
        if published.exists():
            self.previous_dir.mkdir(parents=True, exist_ok=True)
            # A hard link keeps the old version without copying it; readers that hold the
            # published file open keep reading the old inode after the rename below.
            os.link(published, self.previous_dir / f"{published.stem}-{stamp}.duckdb")
        os.replace(new, published)

    def finish_interrupted_publish(self) -> list[Path]:
        """Put in place the analytics warehouse of a run killed between its two renames (its
        main file is the published one); forget markers of runs whose main file did not go out.
        Call it holding the run lock, before clean_leftovers. Returns the files put in place."""
        finished: list[Path] = []
        if not self.builds_dir.is_dir():
            return finished
        published = (
            file_identity(self.published_path.stat()) if self.published_path.exists() else None
        )
        for marker in sorted(self.builds_dir.glob("*.publishing.json")):
            run_id = marker.name.removesuffix(".publishing.json")
            try:
                record = json.loads(marker.read_text(encoding="utf-8"))
            except ValueError:
                record = {}
            analytics = self.analytics_build_path(run_id)
            if record.get("build") == published and published is not None and analytics.exists():
                self._replace(analytics, self.analytics_path, record["stamp"])
                self.source_path(run_id).unlink(missing_ok=True)
                finished.append(self.analytics_path)
            marker.unlink()
        if finished:
            self._prune()
        return finished

    def refuse_if_written(self, action: str = "copy") -> None:
        """WarehouseError when a process writes the published file, or left its log: a run can
        neither `copy` it (the copy would miss the log) nor `replace` it (the writes would be lost)."""
        done = "nothing was replaced" if action == "replace" else "the run did nothing"
        writer = writer_pid(self.published_path)
        if writer is not None:
            who = f"pid {writer}" if writer > 0 else "another process"
            raise WarehouseError(
                f"{self.published_path} is open for writing by {who}, so a run cannot {action} it; {done}. "
                f"Close that connection (readers should open it read_only) and run again"
            )
        wal = self.published_path.with_name(self.published_path.name + ".wal")
        if wal.exists():
            # The log of a writer that did not close: it holds writes the published file does
            # not, and would be replayed into whatever file has this name next.
            raise WarehouseError(
                f"{wal}: the published warehouse has a write-ahead log nobody holds (a writer did not close); {done}. "
                f"Open it once read-write with duckdb and close it to apply the log, then run again"
            )

    def previous_versions(self) -> list[Path]:
        """Earlier main files, oldest first (their analytics twins: previous_analytics_versions)."""
        return sorted(self.previous_dir.glob(f"{self.published_path.stem}-*.duckdb"))

    def previous_analytics_versions(self) -> list[Path]:
        """Earlier analytics files, oldest first; each has the stamp of the main file it went out with."""
        return sorted(self.previous_dir.glob(f"{self.analytics_path.stem}-*.duckdb"))

    def _prune(self) -> None:
        """Keep at most keep_versions earlier versions, and none older than retention_days."""
        for versions in (self.previous_versions(), self.previous_analytics_versions()):
            for old in versions[: max(0, len(versions) - self.keep_versions)]:
                old.unlink()
        self.expire_previous_versions()

    def expire_previous_versions(self, now: float | None = None) -> list[Path]:
        """Remove earlier versions older than retention_days, a main file and its analytics twin
        together (one stamp, one rollback point). Returns the files removed.

        A version's age is its file's modification time: the moment its run last wrote it,
        so the age of the data it holds (the hard link made at publish keeps that time).
        A stamp goes when all of its files are older than the limit, so a pair is never split.
        """
        if self.retention_days is None:
            return []
        cutoff = (time.time() if now is None else now) - self.retention_days * DAY_S
        by_stamp: dict[str, list[Path]] = {}
        for stem, versions in (
            (self.published_path.stem, self.previous_versions()),
            (self.analytics_path.stem, self.previous_analytics_versions()),
        ):
            for path in versions:
                stamp = path.name.removeprefix(f"{stem}-").removesuffix(".duckdb")
                by_stamp.setdefault(stamp, []).append(path)
        removed = []
        for stamp in sorted(by_stamp):
            paths = by_stamp[stamp]
            if all(path.stat().st_mtime < cutoff for path in paths):
                for path in paths:
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed

    def clean_leftovers(self, stale_build_age_s: float | None = None) -> list[Path]:
        """Remove what failed runs left in builds/; call it holding the run lock. Returns what was removed.

        Half copies (.partial) and write-ahead logs of builds no process has open go at
        once: after a disk-full failure they are what keeps the next runs failing. So do
        Splink's scratch folders (SPLINK_SCRATCH_PREFIX) whose database no process has
        open: they belong to a killed run, and they hold records. Failed
        builds are kept `stale_build_age_s` for debugging (default: two days, or
        retention_days when shorter). A build that a process has open for writing is never touched.
        """
        removed = []
        if not self.builds_dir.is_dir():
            return removed
        if stale_build_age_s is None:
            stale_build_age_s = self.stale_build_age_s
        now = time.time()
        for path in sorted(self.builds_dir.iterdir()):
            name = path.name
            if name.startswith(SPLINK_SCRATCH_PREFIX) and path.is_dir():
                if writer_pid(path / SPLINK_SCRATCH_FILE) is None:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
                continue
            if name.endswith(".partial"):
                stale = True
            elif name.endswith(".duckdb.wal"):
                stale = writer_pid(path.with_name(name.removesuffix(".wal"))) is None
            elif name.endswith(".source.json"):
                stale = not path.with_name(name.removesuffix(".source.json") + ".duckdb").exists()
            elif name.endswith(".compact"):
                stale = not path.with_name(name.removesuffix(".compact") + ".duckdb").exists()
            elif name.endswith(".duckdb"):
                stale = now - path.stat().st_mtime > stale_build_age_s and writer_pid(path) is None
                if stale:
                    self.source_path(path.stem).unlink(missing_ok=True)
            else:
                stale = False
            if stale:
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def file_identity(stat: os.stat_result) -> list[int]:
    """Inode, size and modification time: any replace or write of the file changes one of them."""
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def writer_pid(path: str | Path) -> int | None:
    """The pid of a process holding a DuckDB file open read-write (-1 when unknown); None if none.

    A read-write DuckDB connection holds a POSIX write lock on the whole file (a read-only
    one a read lock), so asking the kernel whether a read lock could be placed finds the
    writer, in any process. F_OFD_GETLK also sees a writer in this process. Closing the
    probe's descriptor drops this process's own POSIX locks on the file, as reading it
    does: never call it on a file this process is writing.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        query = struct.pack("hhqqi4x", fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)
        command = getattr(fcntl, "F_OFD_GETLK", fcntl.F_GETLK)
        kind, _, _, _, pid = struct.unpack("hhqqi4x", fcntl.fcntl(fd, command, query))
    finally:
        os.close(fd)
    if kind == fcntl.F_UNLCK:
        return None
    return pid if pid > 0 else -1


# Variables the identity models read, for connections made outside a run (tests, benchmarks).
DEFAULT_VARIABLES = {
    "blocked_identifiers_file": str(BUNDLED_BLOCKED_IDENTIFIERS),
    "max_people_per_identifier": 10,
}


def connect(
    path: str | Path,
    variables: Mapping[str, object] | None = None,
    read_only: bool = False,
    config: Mapping[str, str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open a warehouse file with the schemas created and the run's variables set; `config`
    holds DuckDB settings such as memory_limit and temp_directory."""
    con = duckdb.connect(str(path), read_only=read_only, config=dict(config or {}))
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


def model_path(model: str) -> Path:
    """The file of a model such as 'staging/web_customers': assets/staging/sql/web_customers.sql."""
    schema, table = model.split("/")
    return ASSETS_DIR / SCHEMA_STAGES.get(schema, schema) / "sql" / f"{table}.sql"


def model_sql(model: str) -> str:
    """The select of a model such as 'staging/web_customers'."""
    return model_path(model).read_text(encoding="utf-8")


def run_model(con: duckdb.DuckDBPyConnection, model: str) -> int:
    """Build the table a model file is named after (assets/core/sql/customers.sql -> core.customers).

    Returns the table's row count. The table carries its documentation (schemas/warehouse/)
    as DuckDB comments.
    """
    schema, table = model.split("/")
    con.execute(f"create or replace table {schema}.{table} as\n{model_sql(model)}")
    comment_on_table(con, f"{schema}.{table}")
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
