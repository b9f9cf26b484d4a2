"""`omniloyal find` on a million customers: how long a lookup takes.

    .venv/bin/python -m tests.benchmarks.bench_find [--customers 1000000] [--runs 7]

Synthesises a core.customers-shaped table in a temporary DuckDB file with SQL (names drawn
from lists of common UK first names and surnames, skewed harder than in life: Smith is 9 % of
surnames, John 11 % of first names, so the name blocks hold more candidates than a real
customer base's would, 68,000 for "Jon Smyth"; e-mails and E.164 phones unique per
customer), then times each kind of query in-process, a fresh read-only
connection each run as the command opens one, and the whole command (`omniloyal find`,
Python's start-up and imports included). Prints Markdown for docs/benchmarks.md: the median
and range of `--runs` runs. The file is removed afterwards; nothing is kept.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb

from pipelines.find import find_customers
from tests.benchmarks.common import BIN, median, reference_seconds

FIRST_NAMES = (
    "John David Michael Paul Andrew Mark James Peter Richard Robert Stephen Christopher Ian "
    "Simon Anthony Thomas Daniel Matthew Jon Jonathan Gary Steven Kevin Alan Martin Neil Brian "
    "Susan Sarah Margaret Elizabeth Jane Janet Mary Julie Karen Helen Claire Emma Rachel Laura "
    "Lisa Nicola Louise Anne Jennifer Emily Olivia Sophie Jessica Charlotte Amy Hannah Lucy "
    "Joanne Jean Joan Jack Jacob Joseph Joshua George Harry Oliver William Samuel Samantha Sam "
    "José Zoë Siobhán Aoife Ahmed Mohammed Priya Raj Wei Li Anna Maria Ewa Piotr Kasia"
).split()
LAST_NAMES = (
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson "
    "Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson "
    "Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen "
    "James Scott Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook "
    "Carter Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall "
    "Anderson Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray "
    "Mason Ali Hunt Hussain Campbell Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd "
    "Butler Russell Barker Fisher Stevens Jenkins Murray Dixon Harvey Smythe Smithson Smithers "
    "O'Neil O'Brien McDonald MacLeod Nowak Kowalski Chen Wang Nguyen Müller García"
).split()

SYNTHESIS = """
create schema core;
create table core.customers as
with people as (
    select
        i,
        -- squaring a uniform draw favours the front of each list: the common names
        list_extract(?::varchar[], 1 + floor(pow(random(), 2) * ?)::int) as first_name,
        list_extract(?::varchar[], 1 + floor(pow(random(), 2) * ?)::int) as last_name
    from range(?) t(i)
)
select
    'C' || lpad(i::varchar, 12, '0') as customer_id,
    first_name,
    last_name,
    'customer' || i::varchar || '@example.com' as email,
    '+447' || lpad((100000000 + i)::varchar, 9, '0') as phone_e164,
    'Leeds' as city
from people
order by customer_id;
"""

QUERIES = {
    '"Jon Smyth" (name: blocking + rapidfuzz)': {"name": "Jon Smyth"},
    '"Smith, John" (name, reversed)': {"name": "Smith, John"},
    '"Smyth" (one word)': {"name": "Smyth"},
    '"Jon Smyth" --phone 07100 000042': {"name": "Jon Smyth", "phone": "07100 000042"},
    "--email customer42@example.com": {"email": "customer42@example.com"},
}


def synthesise(path: Path, customers: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("select setseed(0.14)")
    con.execute(
        SYNTHESIS,
        [FIRST_NAMES, len(FIRST_NAMES), LAST_NAMES, len(LAST_NAMES), customers],
    )
    con.close()


def time_query(path: Path, query: dict, runs: int) -> tuple[list[float], int]:
    times, found = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        with duckdb.connect(str(path), read_only=True) as con:
            found = len(find_customers(con, **query))
        times.append(time.perf_counter() - started)
    return times, found


def time_command(path: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [str(BIN / "omniloyal"), "find", "Jon Smyth", "--warehouse", str(path)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "customers.duckdb"
        started = time.perf_counter()
        synthesise(path, args.customers)
        print(
            f"synthesised {args.customers:,} customers in {time.perf_counter() - started:.1f} s; "
            f"reference workload {reference_seconds():.2f} s\n"
        )
        print("| query | matches shown | median s | min-max s |")
        print("|---|---:|---:|---:|")
        shown = {}
        for label, query in QUERIES.items():
            times, shown[label] = time_query(path, query, args.runs)
            print(
                f"| {label} | {shown[label]} | {median(times):.3f} "
                f"| {min(times):.3f}-{max(times):.3f} |"
            )
        times = time_command(path, args.runs)
        print(
            f'| `omniloyal find "Jon Smyth"`, the whole command (start-up and imports included) '
            f"| {next(iter(shown.values()))} | {median(times):.3f} "
            f"| {min(times):.3f}-{max(times):.3f} |"
        )


if __name__ == "__main__":
    main()
