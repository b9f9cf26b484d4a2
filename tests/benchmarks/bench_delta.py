"""Benchmark of a daily delta: the incremental run beside a full refresh over the same inbox.

    .venv/bin/python -m tests.benchmarks.bench_delta [--people 200000] [--days 100] [--runs 1]

Generates `--people` people delivered over `--days` daily files under --work (default
/tmp/delta_bench). The generator delivers on its last day every account registered after
its end date (about half of them), so the delta is the day before: the pipeline runs once
over the days before it (the base warehouse), then that day's files are added and timed, each on a fresh copy of the base: `omniloyal run`
(incremental identity when the day's new and changed records are few) and `omniloyal run
--full-refresh` (training and scoring every record). Prints the seconds (medians over
--runs), their ratio, which path identity took and each run's slowest steps, as Markdown
for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from tests.benchmarks.common import BIN, median
from tests.workspaces import run_arguments

END = date(2026, 6, 30)


def run(workspace: Path, as_of: date, *extra: str) -> tuple[float, str]:
    """Seconds of one `omniloyal run` on `workspace`, and what it printed."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "omniloyal"), *run_arguments(workspace, as_of.isoformat()), *extra],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, result.stdout


def slowest(printed: str) -> str:
    lines = printed.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("slowest steps")), None)
    if start is None:
        return ""
    block = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        block.append(line.strip())
    return "; ".join(block[:5])


def last_match_run(workspace: Path) -> tuple:
    con = duckdb.connect(str(workspace / "warehouse" / "omniloyal.duckdb"), read_only=True)
    try:
        return con.execute(
            "select path, records, records_new_or_changed, records_removed, records_reclustered "
            "from identity.match_runs order by as_of desc, rowid desc limit 1"
        ).fetchall()[0]
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/delta_bench"))
    args = parser.parse_args()
    from pipelines.generator import generate_inbox

    work = args.work
    everything = work / "all"
    base = work / "base"
    delta_on = END - timedelta(days=1)
    day = delta_on.strftime("%Y%m%d")
    later = END.strftime("%Y%m%d")
    if not (base / "warehouse" / "omniloyal.duckdb").exists():
        shutil.rmtree(work, ignore_errors=True)
        started = time.perf_counter()
        generate_inbox(people=args.people, seed=7, out_dir=everything, end_date=END, days=args.days)
        print(f"generated in {time.perf_counter() - started:.0f} s")
        for path in everything.rglob("*"):
            if path.is_file() and day not in path.name and later not in path.name:
                target = base / "inbox" / path.relative_to(everything)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
        seconds, _ = run(base, delta_on - timedelta(days=1))
        print(f"base run over days 1-{args.days - 2}: {seconds:.0f} s")
    timings: dict[str, list[float]] = {"incremental": [], "full refresh": []}
    for _ in range(args.runs):
        for label, extra in (("incremental", ()), ("full refresh", ("--full-refresh",))):
            workspace = work / label.replace(" ", "_")
            shutil.rmtree(workspace, ignore_errors=True)
            shutil.copytree(base, workspace)
            for path in everything.rglob(f"*{day}*"):
                shutil.copy(path, workspace / "inbox" / path.relative_to(everything))
            seconds, printed = run(workspace, delta_on, *extra)
            timings[label].append(seconds)
            path, records, changed, removed, reclustered = last_match_run(workspace)
            print(
                f"{label}: {seconds:.1f} s; identity {path}, {changed} of {records} records new or "
                f"changed, {removed} removed, {reclustered} clustered again; slowest: {slowest(printed)}"
            )
    incremental, full = median(timings["incremental"]), median(timings["full refresh"])
    print()
    print(f"| {args.people:,} people, day {args.days - 1} of {args.days} | seconds |")
    print("|---|---:|")
    print(f"| `omniloyal run` (incremental identity) | {incremental:.0f} |")
    print(f"| `omniloyal run --full-refresh` | {full:.0f} |")
    print(f"| ratio | {incremental / full:.0%} |")


if __name__ == "__main__":
    main()
