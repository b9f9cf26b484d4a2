"""Publishing the analytics warehouse with the main one: both or neither, never of two runs."""

from pathlib import Path

import duckdb
import pytest

from assets.shared.warehouse import Warehouse, WarehouseError


def build(warehouse: Warehouse, run_id: str, analytics: bool = True) -> None:
    """A build holding its run id, and an analytics build saying the same."""
    with warehouse.build(run_id) as con:
        con.execute("create or replace table core.run as select ? as run_id", [run_id])
    if analytics:
        con = duckdb.connect(str(warehouse.analytics_build_path(run_id)))
        con.execute("create table run as select ? as run_id", [run_id])
        con.close()


def run_of(path: Path, table: str) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"select run_id from {table}").fetchall()[0][0]
    finally:
        con.close()


def runs(warehouse: Warehouse) -> tuple[str, str]:
    return (
        run_of(warehouse.published_path, "core.run"),
        run_of(warehouse.analytics_path, "run"),
    )


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "omniloyal.duckdb", keep_versions=2)
    build(warehouse, "r1")
    warehouse.publish("r1")
    return warehouse


def test_both_files_go_out_together_and_old_ones_are_kept_in_pairs(warehouse):
    assert warehouse.analytics_path.name == "omniloyal_analytics.duckdb"
    assert runs(warehouse) == ("r1", "r1")
    for run_id in ("r2", "r3", "r4"):
        build(warehouse, run_id)
        warehouse.publish(run_id)
        assert runs(warehouse) == (run_id, run_id)
    main, analytics = warehouse.previous_versions(), warehouse.previous_analytics_versions()
    assert len(main) == len(analytics) == 2  # keep_versions of each
    for old_main, old_analytics in zip(main, analytics, strict=True):
        assert old_main.name.removeprefix("omniloyal-") == old_analytics.name.removeprefix(
            "omniloyal_analytics-"
        )  # the same stamp: a rollback copies back a matching pair
        assert run_of(old_main, "core.run") == run_of(old_analytics, "run")
    assert [run_of(p, "core.run") for p in main] == ["r2", "r3"]
    assert not list(warehouse.builds_dir.glob("*.publishing.json"))


def test_a_run_without_analytics_build_publishes_nothing_beside_a_published_one(warehouse):
    build(warehouse, "r2", analytics=False)
    with pytest.raises(WarehouseError, match="built no analytics warehouse.*nothing was replaced"):
        warehouse.publish("r2")
    assert runs(warehouse) == ("r1", "r1")


def test_a_publish_killed_between_the_two_renames_is_finished_by_the_next_start(
    warehouse, monkeypatch
):
    build(warehouse, "r2")
    real_replace = Warehouse._replace
    calls = []

    def dies_after_the_main_file(self, new, published, stamp):
        calls.append(published)
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed before the analytics rename
        real_replace(self, new, published, stamp)

    monkeypatch.setattr(Warehouse, "_replace", dies_after_the_main_file)
    with pytest.raises(KeyboardInterrupt):
        warehouse.publish("r2")
    monkeypatch.setattr(Warehouse, "_replace", real_replace)
    assert runs(warehouse) == ("r2", "r1")  # what the next run's start finds
    assert warehouse.finish_interrupted_publish() == [warehouse.analytics_path]
    assert runs(warehouse) == ("r2", "r2")
    assert not list(warehouse.builds_dir.glob("*.publishing.json"))
    assert warehouse.finish_interrupted_publish() == []


def test_a_marker_of_a_run_whose_main_file_did_not_go_out_is_dropped(warehouse, monkeypatch):
    build(warehouse, "r2")
    build(warehouse, "r3")
    monkeypatch.setattr(
        Warehouse, "_replace", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    with pytest.raises(KeyboardInterrupt):
        warehouse.publish("r2")  # killed before any rename
    monkeypatch.undo()
    warehouse.publish("r3")  # another run published since
    assert warehouse.finish_interrupted_publish() == []
    assert runs(warehouse) == ("r3", "r3")
    assert not list(warehouse.builds_dir.glob("*.publishing.json"))
