"""CPU and wall seconds of the heavy late steps on a built warehouse (issue 16).

    .venv/bin/python -m tests.benchmarks.bench_exports --warehouse W.duckdb --work DIR \
        [--steps analytics check source_summary customers customer_records] [--runs 3]

Each step runs in a child process on the built warehouse opened read-only (so the
published file of a full run can be measured in place), timed by GNU time: user+sys CPU
seconds, wall seconds and peak memory. The steps write their result into DIR:
analytics.duckdb for the analytics warehouse (the check reads it) and results.duckdb for
the SQL models, so two code versions can be compared with `except all`
(tests/benchmarks/same_tables.py). Prints Markdown (medians of --runs).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from tests.benchmarks.common import BIN, PROJECT, median

AS_OF = date(2026, 11, 26)
STEPS = ("analytics", "check", "source_summary", "customers", "customer_records")
# The model of each SQL step, written into results.duckdb as <schema>_<table>.
MODELS = {
    "source_summary": "quality/source_summary",
    "customers": "core/customers",
    "customer_records": "core/customer_records",
}


def run_step(step: str, warehouse: Path, work: Path, memory_limit: str) -> None:
    """One step, in this process (the child)."""
    from assets.shared.pseudonyms import load_salt
    from assets.shared.settings import source_priority
    from assets.shared.warehouse import MACROS_FILE, connect, model_sql

    # The step's own CPU, without starting Python and importing the project (the same
    # before and after a change, ~2 s, but it would dilute the ratio).
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    # The warehouse attached read-only to an in-memory database: files attached after it
    # (the analytics file, the results) stay writable.
    con = connect(
        ":memory:",
        # A fixed as-of date: the same results on every day the benchmark is run.
        {"source_priority": list(source_priority()), "as_of": AS_OF},
        config={"memory_limit": memory_limit, "temp_directory": str(work / "spill")},
    )
    con.execute(f"attach '{warehouse}' as {warehouse.stem} (read_only)")
    con.execute(f"use {warehouse.stem}")
    salt = load_salt(warehouse)
    if step == "analytics":
        from assets.privacy.analytics import build_analytics

        build_analytics(con, work / "analytics.duckdb", salt)
    elif step == "check":
        from assets.privacy.analytics import check_analytics

        problems = check_analytics(con, work / "analytics.duckdb", salt)
        if problems:
            raise SystemExit(f"check found {len(problems)} problems: {problems[:3]}")
    else:
        con.execute(MACROS_FILE.read_text(encoding="utf-8"))
        if step == "source_summary":
            from assets.staging.standardizers import register_udfs

            register_udfs(con)
        con.execute(f"attach '{work / 'results.duckdb'}' as results")
        name = MODELS[step].replace("/", "_")
        con.execute(f"create or replace table results.main.{name} as\n{model_sql(MODELS[step])}")
    con.close()
    print(
        f"step_cpu={time.process_time() - started_cpu:.2f} "
        f"step_wall={time.perf_counter() - started_wall:.2f}",
        file=sys.stderr,
    )


def timed(step: str, warehouse: Path, work: Path, memory_limit: str) -> tuple[float, ...]:
    """The step's CPU and wall seconds, then its process's CPU seconds (user+sys), wall
    seconds and peak GB, of one step in a child process."""
    result = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "cpu=%U+%S wall=%e peak_kb=%M",
            str(BIN / "python"),
            "-m",
            "tests.benchmarks.bench_exports",
            "--child",
            step,
            "--warehouse",
            str(warehouse),
            "--work",
            str(work),
            "--memory-limit",
            memory_limit,
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(f"{step} failed: {result.stderr.strip().splitlines()[-1]}")
    lines = result.stderr.strip().splitlines()
    fields = dict(part.split("=") for line in lines[-2:] for part in line.split())
    user, system = (float(x) for x in fields["cpu"].split("+"))
    return (
        float(fields["step_cpu"]),
        float(fields["step_wall"]),
        user + system,
        float(fields["wall"]),
        int(fields["peak_kb"]) / 1e6,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps", nargs="*", choices=STEPS, default=list(STEPS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--child", choices=STEPS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        run_step(args.child, args.warehouse, args.work, args.memory_limit)
        return 0
    print("| step | step CPU s | step wall s | process CPU s | process wall s | peak GB | runs |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for step in args.steps:
        runs = [timed(step, args.warehouse, args.work, args.memory_limit) for _ in range(args.runs)]
        medians = [median([run[i] for run in runs]) for i in range(5)]
        print(
            f"| {step} | "
            + " | ".join(f"{m:.1f}" for m in medians[:4])
            + f" | {medians[4]:.2f} | {len(runs)} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
