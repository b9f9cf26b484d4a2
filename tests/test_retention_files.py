"""Retention of files: earlier warehouse versions and failed builds, at the edges of their age limits."""

import os
import time
from pathlib import Path

import pytest

from assets.shared.warehouse import DAY_S, STALE_BUILD_AGE_S, Warehouse

NOW = 1_800_000_000.0  # a fixed clock for expire_previous_versions(now=...)
MARGIN_S = 60


def touch(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"version")
    os.utime(path, (mtime, mtime))
    return path


def version_pair(warehouse: Warehouse, stamp: str, main_mtime: float, analytics_mtime: float):
    return (
        touch(warehouse.previous_dir / f"omniloyal-{stamp}.duckdb", main_mtime),
        touch(warehouse.previous_dir / f"omniloyal_analytics-{stamp}.duckdb", analytics_mtime),
    )


def test_versions_older_than_retention_go_in_pairs_and_the_edge_stays(tmp_path):
    warehouse = Warehouse(tmp_path / "omniloyal.duckdb", keep_versions=5, retention_days=10)
    limit = NOW - 10 * DAY_S
    expired = version_pair(warehouse, "20250101T000000000000Z", limit - MARGIN_S, limit - MARGIN_S)
    young = version_pair(warehouse, "20250102T000000000000Z", limit + MARGIN_S, limit + MARGIN_S)
    # The analytics twin is younger: the pair is one rollback point and is not split.
    mixed = version_pair(warehouse, "20250103T000000000000Z", limit - MARGIN_S, limit + MARGIN_S)
    # A main file whose twin is gone (published before the analytics file existed).
    lone = touch(warehouse.previous_dir / "omniloyal-20241231T000000000000Z.duckdb", limit - 1)

    removed = warehouse.expire_previous_versions(now=NOW)

    assert sorted(removed) == sorted([lone, *expired])
    assert warehouse.previous_versions() == [young[0], mixed[0]]
    assert warehouse.previous_analytics_versions() == [young[1], mixed[1]]


def test_without_retention_only_the_count_limits_versions(tmp_path):
    warehouse = Warehouse(tmp_path / "omniloyal.duckdb", keep_versions=5)
    version_pair(warehouse, "20200101T000000000000Z", 0, 0)
    assert warehouse.expire_previous_versions(now=NOW) == []
    assert len(warehouse.previous_versions()) == 1


def test_publish_applies_the_count_and_the_age(tmp_path):
    """keep_versions 2 and retention 10 days: of three earlier versions the oldest goes by
    count, the second by age; the third and the one this publish makes stay."""
    warehouse = Warehouse(tmp_path / "omniloyal.duckdb", keep_versions=2, retention_days=10)
    now = time.time()
    by_count = version_pair(warehouse, "20250101T000000000000Z", now - 5 * DAY_S, now - 5 * DAY_S)
    by_age = version_pair(warehouse, "20250102T000000000000Z", now - 11 * DAY_S, now - 11 * DAY_S)
    kept = version_pair(warehouse, "20250103T000000000000Z", now - 9 * DAY_S, now - 9 * DAY_S)
    with warehouse.build("first") as con:
        con.execute("create table raw.t (x int)")
    warehouse.publish("first")  # nothing published before: this makes no earlier version
    with warehouse.build("second") as con:
        con.execute("insert into raw.t values (1)")
    warehouse.publish("second")

    versions = warehouse.previous_versions()
    assert not any(path.exists() for path in (*by_count, *by_age))
    assert versions[0] == kept[0] and len(versions) == 2  # and the version of "first"
    assert kept[1].exists()


@pytest.mark.parametrize(
    ("retention_days", "age_limit_s"),
    [
        (1, 1 * DAY_S),  # retention shorter than two days: a failed build goes after one day
        (730, STALE_BUILD_AGE_S),  # retention longer: still two days, the shorter rule
        (None, STALE_BUILD_AGE_S),
    ],
)
def test_failed_builds_go_after_the_shorter_of_two_days_and_retention(
    tmp_path, retention_days, age_limit_s
):
    warehouse = Warehouse(tmp_path / "omniloyal.duckdb", retention_days=retention_days)
    assert warehouse.stale_build_age_s == age_limit_s
    now = time.time()
    old = touch(warehouse.build_path("old"), now - age_limit_s - MARGIN_S)
    old_analytics = touch(warehouse.analytics_build_path("old"), now - age_limit_s - MARGIN_S)
    touch(warehouse.source_path("old"), now)
    recent = touch(warehouse.build_path("recent"), now - age_limit_s + MARGIN_S)

    removed = warehouse.clean_leftovers()

    assert sorted(removed) == sorted([old, old_analytics, warehouse.source_path("old")])
    assert recent.exists()


def test_retention_days_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="retention_days must be 1 or more, got 0"):
        Warehouse(tmp_path / "omniloyal.duckdb", retention_days=0)
