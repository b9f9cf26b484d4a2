"""Benchmark of the staging stage's steps on a built warehouse: each model and each suite.

    .venv/bin/python -m tests.benchmarks.bench_staging_steps --source W/omniloyal.duckdb \
        --work /tmp/me/staging.duckdb [--runs 3] [--memory-limit 5GB] [--keep]

The source warehouse is only read: a work file gets views of its raw tables, and each step
runs as the pipeline runs it (a fresh connection with the macros and the standardizers per
step, the model's table metadata, then the table's Great Expectations suite). CPU seconds are
the process's (every DuckDB thread included), wall seconds the clock's; each figure is the
median of --runs runs. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date
from pathlib import Path

from assets.ingest.contract import source_files
from assets.shared.sql_assets import table_metadata
from assets.shared.warehouse import MACROS_FILE, connect, run_model
from assets.staging import standardizers
from assets.staging.standardizers import register_udfs
from assets.staging.validation import validate_table

AS_OF = date(2026, 11, 26)


def prepare(source: Path, work: Path, config: dict[str, str]) -> None:
    """A work file whose raw tables are views of the source warehouse's."""
    work.unlink(missing_ok=True)
    con = connect(work, {"as_of": AS_OF}, config=config)
    con.execute(f"attach '{source}' as source (read_only)")
    for spec in source_files():
        con.execute(
            f"create or replace view raw.{spec.table} as select * from source.raw.{spec.table}"
        )
    con.close()


def step_connection(source: Path, work: Path, config: dict[str, str]):
    con = connect(work, {"as_of": AS_OF}, config=config)
    con.execute(f"attach if not exists '{source}' as source (read_only)")
    con.execute(MACROS_FILE.read_text(encoding="utf-8"))
    return con


def build_step(source: Path, work: Path, config: dict[str, str], table: str) -> None:
    con = step_connection(source, work, config)
    register_udfs(con, "")  # the default: the region inferred from the raw tables
    run_model(con, f"staging/{table}")
    table_metadata(con, f"staging.{table}")
    con.close()


def check_step(source: Path, work: Path, config: dict[str, str], table: str) -> None:
    con = step_connection(source, work, config)
    validate_table(con, f"staging.{table}")
    con.close()


def timed(step, *args) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    step(*args)
    return time.process_time() - cpu, time.perf_counter() - wall


def one_run(source: Path, work: Path, config: dict[str, str]) -> dict[str, tuple[float, float]]:
    # A run of the pipeline starts with nothing remembered: neither does each run here.
    standardizers._read_phone.cache_clear()
    times = {}
    for spec in source_files():
        arguments = (source, work, config, spec.table)
        times[f"staging/{spec.table}"] = timed(build_step, *arguments)
        times[f"expectations_{spec.table}"] = timed(check_step, *arguments)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-limit", default="5GB")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work file (to compare tables)"
    )
    args = parser.parse_args()
    config = {"memory_limit": args.memory_limit}
    prepare(args.source, args.work, config)
    # GX's first import costs seconds the pipeline pays once per run: paid before timing.
    import great_expectations  # noqa: F401

    runs = [one_run(args.source, args.work, config) for _ in range(args.runs)]
    print("| step | CPU s | wall s |")
    print("|---|---:|---:|")
    for step in runs[0]:
        cpu = statistics.median(r[step][0] for r in runs)
        wall = statistics.median(r[step][1] for r in runs)
        print(f"| {step} | {cpu:.1f} | {wall:.1f} |")
    total_cpu = statistics.median(sum(c for c, _ in r.values()) for r in runs)
    total_wall = statistics.median(sum(w for _, w in r.values()) for r in runs)
    print(f"| all staging steps | {total_cpu:.1f} | {total_wall:.1f} |")
    if not args.keep:
        args.work.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
