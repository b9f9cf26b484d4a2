"""Incremental identity: scoring only new and changed records gives what scoring every
record with the same saved model gives (assets/identity/incremental.py)."""

import contextlib
import io
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from workspaces import run_arguments

from assets.identity import incremental
from assets.identity.frozen_model import load_frozen, save_frozen
from assets.identity.incremental import (
    KEYS_SQL,
    match_delta,
    plan,
    save_matched_records,
)
from assets.identity.matching import match_records
from pipelines.cli import main
from pipelines.generator import generate_inbox

FIRST = ["oliver", "amelia", "george", "isla", "harry", "ava", "noah", "mia", "jack", "ivy"]
LAST = ["smith", "jones", "taylor", "brown", "wilson", "evans", "thomas", "walker"]


def record(uid, first, last, email=None, phone=None, birth=None, postcode=None, street=None):
    """A row of identity.match_input."""
    source, key = uid.split(":")
    return {
        "unique_id": uid,
        "source": source,
        "source_record_id": key,
        "first_name_key": first,
        "canonical_first_name": first,
        "last_name_key": last,
        "full_name_key": f"{first} {last}",
        "email_key": email,
        "phone_e164": phone,
        "birth_on": date.fromisoformat(birth) if birth else None,
        "postcode": postcode,
        "street_key": street,
        "registered_at": None,
        "is_shared_phone": False,
        "is_shared_email": False,
        "is_shared_address": False,
    }


def others() -> list[dict]:
    """80 people of one record each, all different."""
    return [
        record(
            f"web:F{i:03d}",
            FIRST[i % 10],
            LAST[i // 10],
            f"person{i}@mail.test",
            f"+447{(i * 7_654_321 + 12_345_678) % 10**9:09d}",  # no two a typo apart
            f"19{50 + i % 40}-0{1 + i % 9}-1{i % 10}",
            f"AB{i % 9} 1CD",
            f"{i} high street",
        )
        for i in range(80)
    ]


# Anna Berg: two records sharing a mailbox and a birth date (cluster A), two sharing a phone
# and an address (cluster B); nothing ties A to B but the name.
A = [
    record(
        "web:A1", "anna", "berg", "anna@berg.test", None, "1980-01-01", "ZZ1 1AA", "1 mill lane"
    ),
    record("app:A2", "anna", "berg", "anna@berg.test", None, "1980-01-01"),
]
B = [
    record("store:B1", "anna", "berg", None, "+447700900123", None, "YY9 9BB", "7 oak road"),
    record("call:B2", "anna", "berg", None, "+447700900123", None, "YY9 9BB"),
]
BASE = others() + A + B


def groups(clusters: pa.Table) -> list[list[str]]:
    """The clusters of more than one record, as sorted lists of unique_id."""
    members: dict[str, list[str]] = {}
    for uid, cluster in zip(
        clusters["unique_id"].to_pylist(), clusters["cluster_id"].to_pylist(), strict=True
    ):
        members.setdefault(cluster, []).append(uid)
    return sorted(sorted(m) for m in members.values() if len(m) > 1)


def rows(table: pa.Table) -> list[tuple]:
    return sorted(tuple(r.values()) for r in table.to_pylist())


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """A warehouse as a full run over BASE leaves it: match_input, clusters, evidence, the
    matched records and the saved model."""
    path = tmp_path_factory.mktemp("incremental") / "w.duckdb"
    full = fully_matched(path, BASE)
    assert groups(full.clusters) == [["app:A2", "web:A1"], ["call:B2", "store:B1"]]
    return path


def fully_matched(path: Path, records: list[dict]):
    """Write at `path` what a full run over `records` leaves; returns the match."""
    full = match_records(pa.Table.from_pylist(records))
    con = duckdb.connect(str(path))
    con.execute("create schema identity")
    for table, data in (
        ("match_input", pa.Table.from_pylist(records)),
        ("clusters", full.clusters),
        ("match_evidence", full.evidence),
    ):
        con.register("data", data)
        con.execute(f"create table identity.{table} as select * from data")
        con.unregister("data")
    save_matched_records(con, con.sql(KEYS_SQL).to_arrow_table(), full.evidence)
    save_frozen(con, full.frozen, incremental.current_definition(), date(2026, 1, 1), 0)
    con.close()
    return full


def run_both(previous: Path, tmp_path: Path, delivered: list[dict]):
    """The incremental result for `delivered` (all records now) on a copy of `previous`, and
    the full re-scoring of the same records with the same saved model."""
    path = tmp_path / "w.duckdb"
    shutil.copy(previous, path)
    con = duckdb.connect(str(path))
    try:
        con.register("data", pa.Table.from_pylist(delivered))
        con.execute("create or replace table identity.match_input as select * from data")
        saved = load_frozen(con)
        chosen = plan(con, "auto", 0.5, saved, model_file_given=False)
        assert chosen.path == "incremental", chosen.reason
        result, report = match_delta(
            pa.Table.from_pylist(delivered),
            chosen.changed_ids,
            chosen.seeds,
            con.sql("select * from identity.match_evidence").to_arrow_table(),
            con.sql("select * from identity.clusters").to_arrow_table(),
            saved.frozen,
        )
    finally:
        con.close()
    full = match_records(pa.Table.from_pylist(delivered), frozen=saved.frozen)
    assert rows(result.clusters) == rows(full.clusters)
    assert rows(result.evidence) == rows(full.evidence)
    return result, report, chosen


def test_a_new_record_joins_its_cluster(previous, tmp_path):
    new = record("web:A3", "anna", "berg", "anna@berg.test", None, "1980-01-01")
    result, report, chosen = run_both(previous, tmp_path, [*BASE, new])
    assert chosen.changed == 1 and report.records_scored == 1
    assert groups(result.clusters) == [["app:A2", "web:A1", "web:A3"], ["call:B2", "store:B1"]]
    # Only A's records are clustered again, the other 82 keep their clusters.
    assert report.records_reclustered == 3


def test_a_record_bridging_two_clusters_merges_them(previous, tmp_path):
    bridge = record("web:X1", "anna", "berg", "anna@berg.test", "+447700900123", "1980-01-01")
    result, report, _ = run_both(previous, tmp_path, [*BASE, bridge])
    assert groups(result.clusters) == [["app:A2", "call:B2", "store:B1", "web:A1", "web:X1"]]
    assert report.records_reclustered == 5


def test_a_record_matching_nothing_is_a_customer_of_its_own(previous, tmp_path):
    stranger = record("app:S1", "zeno", "quill", "zeno@quill.test", "+447700900999", "1999-12-31")
    result, report, _ = run_both(previous, tmp_path, [*BASE, stranger])
    assert groups(result.clusters) == [["app:A2", "web:A1"], ["call:B2", "store:B1"]]
    assert dict(zip(*result.clusters.to_pydict().values(), strict=True))["app:S1"] == "app:S1"
    assert report.records_scored == 1 and report.records_reclustered == 1


def test_a_changed_record_leaves_its_cluster(previous, tmp_path):
    moved = record("app:A2", "ivy", "walker", "ivy@walker.test", None, "1991-05-05")
    delivered = [r for r in BASE if r["unique_id"] != "app:A2"] + [moved]
    result, report, chosen = run_both(previous, tmp_path, delivered)
    assert chosen.changed == 1
    assert groups(result.clusters) == [["call:B2", "store:B1"]]
    # A2's old component (A1, A2) is clustered again though A1 did not change.
    assert report.records_reclustered == 2


def test_a_removed_record_splits_what_it_bridged(tmp_path):
    """Records X1 bridged: without it, its neighbours fall apart as a full run has them."""
    bridge = record("web:X1", "anna", "berg", "anna@berg.test", "+447700900123", "1980-01-01")
    first = tmp_path / "first"
    first.mkdir()
    fully_matched(first / "w.duckdb", [*BASE, bridge])
    result, report, chosen = run_both(first / "w.duckdb", tmp_path, BASE)
    assert chosen.removed == 1 and report.records_scored == 0
    assert groups(result.clusters) == [["app:A2", "web:A1"], ["call:B2", "store:B1"]]


def test_the_plan_falls_back_to_a_full_run(previous, tmp_path):
    path = tmp_path / "w.duckdb"
    shutil.copy(previous, path)
    con = duckdb.connect(str(path))
    try:
        saved = load_frozen(con)
        assert plan(con, "full", 0.1, saved, False).path == "full"
        assert plan(con, "auto", 0.1, None, False).path == "full"
        assert plan(con, "auto", 0.1, saved, True).path == "full"
        assert plan(con, "rescore", 0.1, saved, False).path == "rescore"
        unchanged = plan(con, "auto", 0.1, saved, False)
        assert (unchanged.path, unchanged.changed, unchanged.seeds.num_rows) == (
            "incremental",
            0,
            0,
        )
        # 10 new records of 94: above a 10% share.
        extra = [
            record(f"app:N{i}", "noah", "quill", None, None, f"1970-01-1{i}") for i in range(10)
        ]
        con.register("data", pa.Table.from_pylist([*BASE, *extra]))
        con.execute("create or replace table identity.match_input as select * from data")
        assert plan(con, "auto", 0.1, saved, False).path == "full"
        assert plan(con, "auto", 0.2, saved, False).path == "incremental"
        con.execute("create schema privacy")
        con.execute("create table privacy.erased_records as select 1 as x")
        assert plan(con, "auto", 0.2, saved, False).reason.startswith("records were erased")
    finally:
        con.close()


# The property on the whole pipeline: a small inbox delivered over DAYS days.
AS_OF = date(2026, 6, 30)
DAYS = 8


def pipeline(workspace: Path, as_of: date, *extra: str) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main([*run_arguments(workspace, as_of.isoformat()), *extra])
    assert code == 0, printed.getvalue()


# Three pipeline runs (about a minute): in `make test-slow`, which CI runs after `make test`.
@pytest.mark.e2e
@pytest.mark.slow
def test_an_incremental_run_publishes_what_a_full_run_with_the_same_model_does(tmp_path):
    everything = tmp_path / "all"
    generate_inbox(people=300, seed=5, out_dir=everything, end_date=AS_OF, days=DAYS)
    # The generator's last day brings every account registered after it (a bulk): the delta
    # is the latest day before it that delivers customer records.
    delta_on = max(
        date(int(p.stem[-8:-4]), int(p.stem[-4:-2]), int(p.stem[-2:]))
        for p in everything.glob("web/customers_*.csv")
        if len(p.read_text().splitlines()) > 1 and AS_OF.strftime("%Y%m%d") not in p.name
    )
    day = delta_on.strftime("%Y%m%d")
    base = tmp_path / "base"
    for path in everything.rglob("*"):
        on = path.stem[-8:]
        if path.is_file() and on.isdigit() and on < day:
            target = base / "inbox" / path.relative_to(everything)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    pipeline(base, delta_on - timedelta(days=1))  # the days before the delta
    for name, extra in (("incremental", ()), ("rescored", ("--identity-refresh", "rescore"))):
        shutil.copytree(base, tmp_path / name)
        for path in everything.rglob(f"*{day}*"):
            shutil.copy(path, tmp_path / name / "inbox" / path.relative_to(everything))
        pipeline(tmp_path / name, delta_on, *extra)
    con = duckdb.connect()
    for name in ("incremental", "rescored"):
        con.execute(
            f"attach '{tmp_path / name / 'warehouse' / 'omniloyal.duckdb'}' as {name} (read_only)"
        )
    paths = con.execute(
        "select path, records_new_or_changed, records_reclustered, records "
        "from incremental.identity.match_runs where as_of = ?",
        [delta_on],
    ).fetchall()
    assert paths[0][0] == "incremental" and 0 < paths[0][1] and paths[0][2] < paths[0][3], paths
    assert con.execute(
        "select path from rescored.identity.match_runs where as_of = ?", [delta_on]
    ).fetchall() == [("rescore",)]
    for table in ("identity.source_records", "identity.match_evidence", "loyalty.ledger"):
        differ = con.execute(
            f"""
            select
                (select count(*) from (select * from incremental.{table} except all select * from rescored.{table})),
                (select count(*) from (select * from rescored.{table} except all select * from incremental.{table})),
                (select count(*) from incremental.{table})
            """
        ).fetchall()[0]
        assert differ[:2] == (0, 0) and differ[2] > 0, (table, differ)
