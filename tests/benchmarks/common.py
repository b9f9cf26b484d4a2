"""Helpers for the benchmark scripts: timing commands, peak memory, and a reference workload.

The machine is shared and noisy, so every figure is the median of several runs, and each
run is paired with a fixed reference workload (DuckDB aggregating 20M generated rows) run
just before it: the ratio of the two is steadier than either time alone.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

REFERENCE_SQL = "select sum(i % 7), count(distinct i % 100003) from range(20000000) t(i)"


def run_timed(command: list[str], cwd: Path = PROJECT) -> tuple[float, float]:
    """Wall seconds and peak resident memory (GB) of a command, measured by GNU time."""
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "peak_kb=%M", *command],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - started
    peak_kb = int(result.stderr.rsplit("peak_kb=", 1)[1].split()[0])
    return elapsed, peak_kb / 1e6


def reference_seconds() -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "python"), "-c", f"import duckdb; duckdb.sql('{REFERENCE_SQL}').fetchall()"],
        check=True,
    )
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)
