"""Erasure after the publish (assets/privacy/after_publish.py): which request files leave the
inbox, when the copies are due to be scrubbed, and which identity charts the run keeps.
Hand-built warehouses and inboxes; the expected outcomes are written out by hand."""

import gzip
import hashlib
import json
import os
from datetime import UTC, date, datetime

import duckdb
import pytest

from assets.privacy.after_publish import (
    applied_request_files,
    chart_date_to_keep,
    reached_record,
    record_reached,
    remove_settled_request_files,
    requests_not_reached,
)
from assets.shared.warehouse import Warehouse

HEADER = "request_id,email,phone,source,source_record_id,received_at\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def place(tmp_path):
    """An inbox of request files and a published warehouse that ingested them:

    A: R1, R2 both completed                      -> removed
    B: R3 completed, R4 needs review              -> kept (the steward settles R4)
    A2: A's bytes again under another name        -> removed with A (a duplicate delivery)
    D: R5 completed, but the file now holds other bytes -> kept, reported as changed
    E.gz: R6 completed, ingested by its content   -> removed
    F: every row quarantined, none loaded          -> kept
    """
    inbox = tmp_path / "inbox"
    (inbox / "privacy").mkdir(parents=True)
    files = {
        "A": HEADER + "R1,a@example.com,,,,\nR2,,+447700900001,,,\n",
        "B": HEADER + "R3,b@example.com,,,,\nR4,,+441134960000,,,\n",
        "D": HEADER + "R5,d@example.com,,,,\n",
        "E": HEADER + "R6,e@example.com,,,,\n",
        "F": HEADER + "R7,,,,,\n",
    }
    names = {key: f"privacy/erasure_requests_{key}_20260601.csv" for key in files}
    names["E"] += ".gz"
    ids = {key: sha(text.encode()) for key, text in files.items()}
    for key, text in files.items():
        data = gzip.compress(text.encode()) if key == "E" else text.encode()
        (inbox / names[key]).write_bytes(data)
    duplicate = "privacy/erasure_requests_A2_20260602.csv"
    (inbox / duplicate).write_bytes(files["A"].encode())
    (inbox / names["D"]).write_text(HEADER + "R9,new@example.com,,,,\n")  # changed since

    published = tmp_path / "w" / "omniloyal.duckdb"
    published.parent.mkdir()
    con = duckdb.connect(str(published))
    con.execute("create schema raw")
    con.execute("create schema privacy")
    con.execute(
        "create table raw.deliveries (delivery_id varchar, file varchar, source varchar, entity varchar)"
    )
    con.executemany(
        "insert into raw.deliveries values (?, ?, 'privacy', 'erasure_requests')",
        [[ids[key], names[key]] for key in files],
    )
    con.execute(
        "insert into raw.deliveries values ('w1', 'web/customers_1.csv', 'web', 'customers')"
    )
    con.execute(
        "create table raw.duplicate_deliveries (file varchar, sha256 varchar, duplicate_of varchar)"
    )
    con.execute(
        "insert into raw.duplicate_deliveries values (?, ?, ?)", [duplicate, ids["A"], names["A"]]
    )
    con.execute("create table raw.erasure_requests (request_id varchar, _delivery_id varchar)")
    con.executemany(
        "insert into raw.erasure_requests values (?, ?)",
        [
            ["R1", ids["A"]],
            ["R2", ids["A"]],
            ["R3", ids["B"]],
            ["R4", ids["B"]],
            ["R5", ids["D"]],
            ["R6", ids["E"]],
        ],
    )
    con.execute(
        "create table privacy.erasure_log (request_id varchar, status varchar, completed_at timestamp)"
    )
    con.executemany(
        "insert into privacy.erasure_log values (?, ?, ?)",
        [[r, "completed", datetime(2026, 6, 1, 9)] for r in ("R1", "R2", "R3", "R5", "R6")]
        + [["R4", "needs_review", None]],
    )
    con.close()
    return inbox, published, names, duplicate


def test_applied_request_files_leave_the_inbox_and_the_others_stay(place):
    inbox, published, names, duplicate = place
    same, changed = applied_request_files(inbox, published)
    assert sorted(same) == sorted([names["A"], duplicate, names["E"]])
    assert changed == [names["D"]]

    removed, kept = remove_settled_request_files(inbox, published)

    assert sorted(removed) == sorted(same) and kept == changed
    left = sorted(str(p.relative_to(inbox)) for p in (inbox / "privacy").iterdir())
    assert left == sorted([names["B"], names["D"], names["F"]])
    # Nothing more to do the next time.
    assert remove_settled_request_files(inbox, published) == ([], [names["D"]])


def test_a_link_in_place_of_a_request_file_is_not_followed_nor_removed(place, tmp_path):
    inbox, published, names, _ = place
    target = tmp_path / "elsewhere.csv"
    target.write_bytes((inbox / names["A"]).read_bytes())
    (inbox / names["A"]).unlink()
    os.symlink(target, inbox / names["A"])
    same, changed = applied_request_files(inbox, published)
    assert names["A"] not in same and names["A"] in changed
    remove_settled_request_files(inbox, published)
    assert (inbox / names["A"]).is_symlink() and target.exists()


def test_a_warehouse_without_requests_removes_nothing(tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "privacy").mkdir(parents=True)
    (inbox / "privacy" / "erasure_requests_20260601.csv").write_text(HEADER)
    published = tmp_path / "omniloyal.duckdb"
    duckdb.connect(str(published)).close()
    assert remove_settled_request_files(inbox, published) == ([], [])
    assert remove_settled_request_files(inbox, tmp_path / "none.duckdb") == ([], [])


def test_the_copies_are_due_until_a_clean_search_records_the_requests(place):
    _, published, _, _ = place
    warehouse = Warehouse(published)
    assert requests_not_reached(warehouse) == ["R1", "R2", "R3", "R5", "R6"]
    record_reached(warehouse, ["R1", "R2"])
    assert requests_not_reached(warehouse) == ["R3", "R5", "R6"]
    record_reached(warehouse, ["R3", "R5", "R6"])
    assert requests_not_reached(warehouse) == []
    assert json.loads(reached_record(warehouse).read_text())["requests"] == [
        "R1",
        "R2",
        "R3",
        "R5",
        "R6",
    ]
    # An unreadable record: everything is due again (slower, never a copy left behind).
    reached_record(warehouse).write_text("{not json")
    assert requests_not_reached(warehouse) == ["R1", "R2", "R3", "R5", "R6"]
    # No erasure ever: nothing is due, and no copy is opened.
    assert requests_not_reached(Warehouse(published.with_name("other.duckdb"))) == []


def test_the_run_s_own_charts_are_kept_only_when_written_after_the_erasure(tmp_path):
    folder = tmp_path / "identity" / "2026-06-02"
    folder.mkdir(parents=True)
    for name in ("cluster_studio.html", "waterfall.html", "match_weights.html"):
        (folder / name).write_text("<html></html>")
    erased_at = datetime(2026, 6, 2, 9, 0, tzinfo=UTC)
    as_of = date(2026, 6, 2)
    before, after = erased_at.timestamp() - 60, erased_at.timestamp() + 60
    for name in ("cluster_studio.html", "waterfall.html"):
        os.utime(folder / name, (after, after))
    os.utime(folder / "match_weights.html", (before, before))  # model-level: does not count
    assert chart_date_to_keep(tmp_path, as_of, erased_at) == as_of
    os.utime(folder / "waterfall.html", (before, before))  # from a run before the erasure
    assert chart_date_to_keep(tmp_path, as_of, erased_at) is None
    assert chart_date_to_keep(tmp_path, as_of, None) == as_of
    assert chart_date_to_keep(tmp_path, date(2026, 6, 3), erased_at) is None
