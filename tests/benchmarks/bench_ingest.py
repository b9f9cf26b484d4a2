"""Ingestion speed: rows a second per delivery and for a whole inbox.

    .venv/bin/python tests/benchmarks/bench_ingest.py --inbox /tmp/big/inbox --repeat 3

Each run ingests the inbox into a fresh warehouse file (under --work), as the ingest step
does: find_deliveries identifies every file (reads and hashes it), then ingest_delivery
reads, types and appends each one. A delivery's time is that of ingest_delivery; the
total adds the identification. Figures are medians of --repeat runs (the machine is
shared and noisy). `read by` says which path read the file: duckdb (the fast path,
assets/ingest/fast_path.py) or python (the exact path, assets/ingest/deliveries.py).

--exact-only turns the fast path off, to measure the exact path on the same files. To
measure another checkout (e.g. the code before the fast path), put it first on the path:
PYTHONPATH=/work/main .venv/bin/python tests/benchmarks/bench_ingest.py ...

--floor measures what DuckDB alone takes for each file instead: its own reader
(read_csv, read_json) writing a table of the file into a fresh warehouse file, with no
line numbers, checks or quarantine. That is the speed ingestion can at best approach.
The load average is printed before and after: other work on the machine slows every figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path


def fresh_work(work: Path) -> dict:
    """An empty `work` folder, and the DuckDB settings a run has: the default memory limit,
    spilling into the folder."""
    from assets.shared.defaults import DEFAULTS

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return {
        "memory_limit": DEFAULTS["duckdb_memory_limit"][1],
        "temp_directory": str(work / "tmp"),
    }


def one_run(inbox: Path, work: Path, exact_only: bool) -> tuple[float, dict[str, tuple]]:
    """Seconds to identify the inbox's files, and per file (rows read, seconds, CPU seconds, read by)."""
    from assets.ingest import deliveries
    from assets.shared.warehouse import connect

    if exact_only:
        from assets.ingest import fast_path

        fast_path.read_records = lambda *args: None
    con = connect(work / "bench.duckdb", config=fresh_work(work))
    try:
        deliveries.create_raw_tables(con)
        started = time.perf_counter()
        found = deliveries.find_deliveries(inbox)
        identify = time.perf_counter() - started
        files = {}
        for delivery in found:
            started, cpu = time.perf_counter(), time.process_time()
            summary = deliveries.ingest_delivery(con, delivery)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            read_by = summary.get("read_by", "python")
            files[delivery.name] = (summary["rows_read"], seconds, cpu, read_by)
        return identify, files
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)


def floor_run(inbox: Path, work: Path) -> tuple[float, dict[str, tuple]]:
    """Per file (rows, seconds, CPU seconds, "floor"): DuckDB's reader writing a table of it."""
    import duckdb

    from assets.ingest import deliveries

    files = {}
    for delivery in deliveries.find_deliveries(inbox):
        con = duckdb.connect(str(work / "floor.duckdb"), config=fresh_work(work))
        path = str(delivery.path).replace("'", "''")
        if delivery.spec.format == "csv":
            reader = f"read_csv('{path}', ignore_errors = true)"
        else:
            reader = f"read_json('{path}', format = 'newline_delimited', ignore_errors = true)"
        try:
            started, cpu = time.perf_counter(), time.process_time()
            con.execute(f"create table delivery as select * from {reader}")
            con.execute("checkpoint")
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            rows = con.execute("select count(*) from delivery").fetchall()[0][0]
        finally:
            con.close()
            shutil.rmtree(work, ignore_errors=True)
        files[delivery.name] = (rows, seconds, cpu, "floor")
    return 0.0, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inbox", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ingest_bench/work"))
    parser.add_argument("--exact-only", action="store_true", help="turn the fast path off")
    parser.add_argument(
        "--floor", action="store_true", help="DuckDB's own readers writing each file as a table"
    )
    args = parser.parse_args()
    if not args.inbox.is_dir():
        parser.error(f"--inbox {args.inbox}: not a folder")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    print(f"load average before: {os.getloadavg()[0]:.1f}")
    if args.floor:
        runs = [floor_run(args.inbox, args.work) for _ in range(args.repeat)]
    else:
        runs = [one_run(args.inbox, args.work, args.exact_only) for _ in range(args.repeat)]
    names = list(runs[0][1])

    def median_of(name: str, field: int) -> float:
        return statistics.median(run[1][name][field] for run in runs)

    print(f"{'file':36} {'rows':>10} {'read by':>8} {'seconds':>8} {'cpu s':>7} {'rows/s':>10}")
    for name in names:
        rows, _, _, read_by = runs[0][1][name]
        seconds = median_of(name, 1)
        print(
            f"{name:36} {rows:>10,} {read_by:>8} {seconds:>8.2f} {median_of(name, 2):>7.2f} "
            f"{rows / seconds:>10,.0f}"
        )
    rows = sum(runs[0][1][name][0] for name in names)
    identify = statistics.median(run[0] for run in runs)
    print(f"{'identify (read and hash each file)':36} {'':>10} {'':>8} {identify:>8.2f}")
    reading = [sum(file[1] for file in run[1].values()) for run in runs]
    totals = [run[0] + read for run, read in zip(runs, reading)]
    for label, seconds in (("deliveries", reading), ("total (identify + deliveries)", totals)):
        median = statistics.median(seconds)
        print(f"{label:36} {rows:>10,} {'':>8} {median:>8.2f} {'':>7} {rows / median:>10,.0f}")
    shown = ", ".join(f"{t:.1f}" for t in totals)
    cpu = statistics.median(sum(file[2] for file in run[1].values()) for run in runs)
    print(f"median of {args.repeat} runs (totals: {shown} s); cpu s: CPU seconds of all threads")
    print(f"deliveries' CPU seconds: {cpu:.1f}, {rows / cpu:,.0f} rows a CPU second")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
