"""Benchmark of ingestion and standardization: a generated inbox through raw and staging.

    .venv/bin/python -m tests.benchmarks.bench_staging --inbox DIR [--runs 3]

Generate the inbox first, e.g. `omniloyal generate --people 540000 --seed 101 --out DIR`
(about 1.2M customer records). Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from assets.ingest.contract import source_files
from assets.ingest.deliveries import ingest_inbox
from assets.shared.warehouse import MACROS_FILE, connect, run_model
from assets.staging.standardizers import register_udfs
from tests.benchmarks.common import median, reference_seconds


def one_run(inbox: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        con = connect(Path(folder) / "w.duckdb", {"as_of": date(2026, 11, 24)})
        con.execute(MACROS_FILE.read_text())
        register_udfs(con, "GB")
        started = time.perf_counter()
        ingest_inbox(con, inbox)
        ingested = time.perf_counter()
        customer_records = 0
        for spec in source_files():
            rows = run_model(con, f"staging/{spec.table}")
            if spec.entity in ("customers", "users", "members", "contacts"):
                customer_records += rows
        staged = time.perf_counter()
        con.close()
    return {"ingest": ingested - started, "staging": staged - ingested, "records": customer_records}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inbox", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        reference = reference_seconds()
        result = one_run(args.inbox)
        result["reference"] = reference
        runs.append(result)
    records = runs[0]["records"]
    print(f"\n{records:,} customer records in {args.inbox}")
    print("| step | median s | min-max s | median ratio to reference |")
    print("|---|---:|---:|---:|")
    for step in ("ingest", "staging"):
        times = [r[step] for r in runs]
        ratios = [r[step] / r["reference"] for r in runs]
        print(
            f"| {step} | {median(times):.1f} | {min(times):.1f}-{max(times):.1f} | {median(ratios):.1f}x |"
        )


if __name__ == "__main__":
    main()
