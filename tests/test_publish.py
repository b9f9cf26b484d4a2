"""Publishing a build: nothing replaced when the published file changed or is being written; leftovers cleaned."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from assets.shared.warehouse import (
    SPLINK_SCRATCH_FILE,
    SPLINK_SCRATCH_PREFIX,
    Warehouse,
    WarehouseError,
    connect,
)

ROOT = Path(__file__).resolve().parents[1]


def rows(path: Path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select * from raw.t order by all").fetchall()
    finally:
        con.close()


def build(warehouse: Warehouse, run_id: str, value: int) -> None:
    with warehouse.build(run_id) as con:
        con.execute("create table if not exists raw.t (run varchar)")
        con.execute("insert into raw.t values (?)", [f"{run_id}-{value}"])


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "omniloyal.duckdb")
    build(warehouse, "first", 1)
    warehouse.publish("first")
    return warehouse


def identity(path: Path) -> tuple:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def test_publish_refuses_a_file_replaced_since_the_run_copied_it(warehouse):
    build(warehouse, "slow", 2)  # copies the published file
    build(warehouse, "fast", 3)
    warehouse.publish("fast")  # an overlapping run publishes first
    before = identity(warehouse.published_path)
    with pytest.raises(
        WarehouseError, match="changed since this run copied it.*nothing was replaced"
    ):
        warehouse.publish("slow")
    assert identity(warehouse.published_path) == before
    assert rows(warehouse.published_path) == [("fast-3",), ("first-1",)]


def test_publish_refuses_on_a_first_run_when_another_run_published_meanwhile(tmp_path):
    warehouse = Warehouse(tmp_path / "omniloyal.duckdb")
    build(warehouse, "a", 1)
    build(warehouse, "b", 2)
    warehouse.publish("b")
    with pytest.raises(WarehouseError, match="changed since this run copied it"):
        warehouse.publish("a")
    assert rows(warehouse.published_path) == [("b-2",)]


def test_publish_refuses_while_another_process_writes_the_published_file(warehouse):
    build(warehouse, "second", 2)
    published = warehouse.published_path
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, time; "
            f"con = duckdb.connect({str(published)!r}); con.execute(\"insert into raw.t values ('holder')\"); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        before = identity(published)
        with pytest.raises(
            WarehouseError,
            match=f"open for writing by pid {holder.pid}, so a run cannot replace it; nothing was replaced",
        ):
            warehouse.publish("second")
        assert identity(published) == before and warehouse.previous_versions() == []
        # A new run cannot copy a file being written either: its copy would miss the writer's log.
        with pytest.raises(WarehouseError, match="open for writing"):
            build(warehouse, "third", 3)
    finally:
        holder.kill()
        holder.wait()
    # The killed writer left its log: still refused, since publishing would drop those writes.
    assert published.with_name(published.name + ".wal").exists()
    with pytest.raises(WarehouseError, match="write-ahead log"):
        warehouse.publish("second")


def test_leftovers_of_failed_builds_are_cleaned_but_not_a_build_in_use(warehouse):
    builds = warehouse.builds_dir
    (builds / "killed.partial").write_bytes(b"half a copy")
    (builds / "killed.duckdb.wal").write_bytes(b"log of a killed run")
    (builds / "gone.source.json").write_text("{}")
    old = builds / "old.duckdb"
    old.write_bytes(b"")
    os.utime(old, (0, 0))
    in_use = connect(builds / "running.duckdb")
    try:
        in_use.execute("create table raw.x as select 1 as a")
        assert (builds / "running.duckdb.wal").exists()
        removed = warehouse.clean_leftovers()
        assert {p.name for p in removed} == {
            "killed.partial",
            "killed.duckdb.wal",
            "gone.source.json",
            "old.duckdb",
        }
        assert (builds / "running.duckdb.wal").exists()
    finally:
        in_use.close()


def test_splink_scratch_of_a_killed_run_is_removed_but_not_one_in_use(warehouse):
    from assets.identity.matching import splink_connection

    builds = warehouse.builds_dir
    killed = builds / f"{SPLINK_SCRATCH_PREFIX}killed"
    killed.mkdir()
    leftover = duckdb.connect(str(killed / SPLINK_SCRATCH_FILE))
    leftover.execute("create table records as select 'a person' as name")
    leftover.close()
    with splink_connection("1GB", builds) as (con, scratch):
        con.execute("create table records as select 'another person' as name")
        assert scratch.parent == builds and scratch.name.startswith(SPLINK_SCRATCH_PREFIX)
        removed = warehouse.clean_leftovers()
        assert removed == [killed] and not killed.exists()
        assert (scratch / SPLINK_SCRATCH_FILE).exists()
    assert not scratch.exists()  # a finished match removes its own


def test_keep_versions_below_zero_is_refused(tmp_path):
    with pytest.raises(ValueError, match="keep_versions must be 0 or more.*-1"):
        Warehouse(tmp_path / "omniloyal.duckdb", keep_versions=-1)


@pytest.mark.parametrize(
    "outcome, code, told",
    [
        ("published", 0, "but could not read its summary: IO Error: Could not set lock"),
        (
            "exports failed",
            0,
            "published_warehouse: the warehouse was published, but its segment exports",
        ),
        ("refused", 1, "failed; the published warehouse is unchanged"),
    ],
)
def test_omniloyal_run_never_fails_after_publishing(
    tmp_path, monkeypatch, capsys, outcome, code, told
):
    """Issue 12: a writer that opened the new file made the summary raise: traceback, exit 1, after publishing."""
    import dagster as dg

    import pipelines.definitions
    import pipelines.summary
    from assets.shared.settings import PipelineSettings
    from pipelines.cli import main

    @dg.asset(name="published_warehouse")
    def publish(settings: PipelineSettings) -> None:
        if outcome == "exports failed":
            raise dg.Failure(
                description="the warehouse was published, but its segment exports could not be put in place",
                metadata={"warehouse_published": True},
            )
        if outcome == "refused":
            raise dg.Failure(description="changed since this run copied it")

    def unreadable(*args, **kwargs):
        raise duckdb.IOException(
            'IO Error: Could not set lock on file "x": Conflicting lock is held (PID 1)'
        )

    job = dg.define_asset_job("omniloyal_everything")
    monkeypatch.setattr(
        pipelines.definitions,
        "defs",
        dg.Definitions(
            assets=[publish],
            jobs=[job],
            resources={"settings": PipelineSettings()},
            executor=dg.in_process_executor,
        ),
    )
    monkeypatch.setattr(pipelines.summary, "print_summary", unreadable)
    (tmp_path / "inbox").mkdir()
    assert (
        main(
            [
                "run",
                "--inbox",
                str(tmp_path / "inbox"),
                "--warehouse",
                str(tmp_path / "omniloyal.duckdb"),
                "--exports",
                str(tmp_path / "exports"),
                "--reports",
                str(tmp_path / "reports"),
            ]
        )
        == code
    )
    err = capsys.readouterr().err
    assert told in err and "Traceback" not in err
