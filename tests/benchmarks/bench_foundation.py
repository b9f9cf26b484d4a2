"""Benchmark of the foundation: the generator at 1M customer records, and the demo pipeline.

    .venv/bin/python -m tests.benchmarks.bench_foundation [--runs 3]

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tests.benchmarks.common import BIN, median, reference_seconds, run_timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--big-people", type=int, default=540_000, help="about 1.2M customer records"
    )
    args = parser.parse_args()
    omniloyal = str(BIN / "omniloyal")
    work = Path(tempfile.mkdtemp(prefix="omniloyal-bench-"))
    rows = []
    try:
        cases = {
            f"generate {args.big_people:,} people": lambda run: [
                omniloyal,
                "generate",
                "--people",
                str(args.big_people),
                "--seed",
                str(900 + run),
                "--out",
                str(work / f"big{run}"),
                "--end-date",
                "2026-11-24",
            ],
            "generate 5,000 people (demo inbox)": lambda run: [
                omniloyal,
                "generate",
                "--people",
                "5000",
                "--seed",
                "7",
                "--out",
                str(work / f"demo{run}"),
                "--end-date",
                "2026-11-24",
            ],
            "run the whole graph on the demo inbox": lambda run: [
                omniloyal,
                "run",
                "--inbox",
                str(work / "demo0"),
                "--warehouse",
                str(work / f"w{run}" / "omniloyal.duckdb"),
                "--exports",
                str(work / f"x{run}"),
                "--reports",
                str(work / f"r{run}"),
                "--as-of",
                "2026-11-24",
            ],
        }
        for name, command in cases.items():
            times, ratios, peaks = [], [], []
            for run in range(args.runs):
                reference = reference_seconds()
                elapsed, peak = run_timed(command(run))
                times.append(elapsed)
                ratios.append(elapsed / reference)
                peaks.append(peak)
                if name.startswith(f"generate {args.big_people:,}"):
                    shutil.rmtree(work / f"big{run}")
            rows.append((name, median(times), min(times), max(times), median(ratios), max(peaks)))
            print(f"done: {name}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| workload | median s | min-max s | median ratio to reference | peak memory GB |")
    print("|---|---:|---:|---:|---:|")
    for name, med, low, high, ratio, peak in rows:
        print(f"| {name} | {med:.1f} | {low:.1f}-{high:.1f} | {ratio:.1f}x | {peak:.2f} |")


if __name__ == "__main__":
    main()
