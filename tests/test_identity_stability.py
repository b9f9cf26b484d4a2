"""Customer ids and the points ledger across two daily deliveries, through the whole pipeline."""

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from assets.loyalty.settling import INVARIANTS, broken_invariants
from pipelines.cli import main
from pipelines.generator import generate_inbox

# Two pipeline runs, a day apart: in `make test-slow`, which CI runs after `make test`.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EARNED = "select entry_id, points from loyalty.ledger where rule = 'purchase'"
IDS = "select source, source_record_id, customer_id from identity.source_records"


@pytest.fixture(scope="module")
def two_days(tmp_path_factory) -> tuple[dict, Path]:
    """Run day one's deliveries, keep what it published, then add day two's and run again."""
    tmp_path = tmp_path_factory.mktemp("two_days")
    full = tmp_path / "full"
    # Seed 19: its second day brings records that join customers of the first (a merge).
    generate_inbox(
        people=600, seed=19, out_dir=full, end_date=date(2026, 6, 30), days=2, bad_row_rate=0
    )
    inbox = tmp_path / "inbox"
    shutil.copytree(full, inbox, ignore=shutil.ignore_patterns("*_20260630.*"))
    warehouse = tmp_path / "w" / "omniloyal.duckdb"

    def run(as_of: str) -> None:
        assert (
            main(
                [
                    "run",
                    "--inbox",
                    str(inbox),
                    "--warehouse",
                    str(warehouse),
                    "--exports",
                    str(tmp_path / "x"),
                    "--reports",
                    str(tmp_path / "r"),
                    "--as-of",
                    as_of,
                ]
            )
            == 0
        )

    run("2026-06-29")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        day_one = {
            "ids": con.execute(IDS).fetchall(),
            "earned": dict(con.execute(EARNED).fetchall()),
        }
    for path in full.rglob("*_20260630.*"):
        shutil.copy(path, inbox / path.relative_to(full))
    run("2026-06-30")
    return day_one, warehouse


def test_a_day_of_new_deliveries_keeps_at_least_99_percent_of_ids(two_days):
    day_one, warehouse = two_days
    with duckdb.connect(str(warehouse), read_only=True) as con:
        day_two = {(s, r): c for s, r, c in con.execute(IDS).fetchall()}
    kept = sum(day_two[(s, r)] == c for s, r, c in day_one["ids"])
    assert len(day_two) > len(day_one["ids"])  # the second day brought new records
    assert kept / len(day_one["ids"]) >= 0.99, kept / len(day_one["ids"])


def test_the_ledger_holds_across_a_day_that_merges_customers(two_days):
    day_one, warehouse = two_days
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert (
            con.execute(
                "select count(*) from identity.id_history where reason = 'merged'"
            ).fetchall()[0][0]
            > 0
        )
        assert broken_invariants(con) == dict.fromkeys(INVARIANTS, 0)
        # Points earned on day one are earned the same on day two, whoever they belong to now.
        day_two = dict(con.execute(EARNED).fetchall())
        assert {entry: day_two.get(entry) for entry in day_one["earned"]} == day_one["earned"]
        # One enrolment bonus per customer, merged or not.
        assert (
            con.execute(
                "select count(*) from (select customer_id from loyalty.ledger where rule = 'enrolment' group by 1 having count(*) > 1)"
            ).fetchall()[0][0]
            == 0
        )
