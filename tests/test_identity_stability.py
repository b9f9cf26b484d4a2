"""Customer ids across two daily deliveries, through the whole pipeline."""

import shutil
from datetime import date

import duckdb

from pipelines.cli import main
from pipelines.generator import generate_inbox


def test_a_day_of_new_deliveries_keeps_at_least_99_percent_of_ids(tmp_path):
    full = tmp_path / "full"
    generate_inbox(people=600, seed=17, out_dir=full, end_date=date(2026, 6, 30), days=2, bad_row_rate=0)
    inbox = tmp_path / "inbox"
    shutil.copytree(full, inbox, ignore=shutil.ignore_patterns("*_20260630.*"))
    warehouse = tmp_path / "w" / "omniloyal.duckdb"

    def run(as_of: str) -> list[tuple]:
        assert main(["run", "--inbox", str(inbox), "--warehouse", str(warehouse), "--exports", str(tmp_path / "x"),
                     "--reports", str(tmp_path / "r"), "--as-of", as_of]) == 0
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            return con.execute("select source, source_record_id, customer_id from identity.source_records").fetchall()
        finally:
            con.close()

    day_one = run("2026-06-29")
    for path in full.rglob("*_20260630.*"):
        shutil.copy(path, inbox / path.relative_to(full))
    day_two = {(s, r): c for s, r, c in run("2026-06-30")}
    kept = sum(day_two[(s, r)] == c for s, r, c in day_one)
    assert len(day_two) > len(day_one)  # the second day brought new records
    assert kept / len(day_one) >= 0.99, kept / len(day_one)
