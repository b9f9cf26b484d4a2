"""Benchmark of the loyalty engine on a synthetic ledger of about ten million entries.

    .venv/bin/python -m tests.benchmarks.bench_loyalty [--customers 500000] [--runs 3]
    .venv/bin/python -m tests.benchmarks.bench_loyalty --warehouse W.duckdb --as-of 2026-11-26

With --warehouse, the inputs are instead copied out of a warehouse a full run built (its
core.events, core.customers, identity and privacy tables), so the stage runs on the data
of `omniloyal generate`; the runs then also report their CPU seconds (user + system).

The inputs (core.customers, core.events, the identity tables) are generated in DuckDB
from hashes of row numbers, so every run sees the same data: two years of purchases
over three channels (5% of web orders refunded), app engagement, redemptions of 100 to
1,000 points and store returns. Each run builds the loyalty stage from the bundled
program file in a child process, timed with its peak memory, on a fresh copy of the
inputs. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from tests.benchmarks.common import BIN, median, reference_seconds, run_timed
from tests.loyalty_models import BEFORE_POINT_MOVEMENTS

AS_OF = date(2026, 6, 30)

INPUTS_SQL = """
create schema if not exists core;
create schema if not exists identity;
create schema if not exists staging;
-- The columns loyalty.referrals reads; no referrals in the synthetic inputs.
create or replace table staging.web_customers (
    source varchar, source_record_id varchar, registered_at timestamp, referral_code varchar, referred_by varchar);
create or replace table staging.app_users as select * from staging.web_customers;
create or replace table core.customers as
select
    'C' || i as customer_id,
    date '1950-01-01' + cast(hash(i, 'birth') % 20000 as integer) as birth_on,
    timestamp '2023-01-01' + to_seconds(cast(hash(i, 'registered') % (365 * 86400) as bigint)) as first_registered_at
from range({customers}) t(i);

create or replace table identity.source_records as
select 'web' as source, 'W' || i as source_record_id, 'C' || i as customer_id from range({customers}) t(i);

create or replace table identity.match_input as
select 'web:W' || i as unique_id, 'web' as source, 'W' || i as source_record_id,
       timestamp '2023-01-01' + to_seconds(cast(hash(i, 'registered') % (365 * 86400) as bigint)) as registered_at
from range({customers}) t(i);

create or replace table core.events as
with
numbered as (
    select
        i,
        'C' || (hash(i, 'customer') % {customers}) as customer_id,
        timestamp '2024-07-01' + to_seconds(cast(hash(i, 'at') % (730 * 86400) as bigint)) as occurred_at,
        hash(i, 'kind') % 100 as roll
    from range({events}) t(i)
),
typed as (
    select *,
        case
            when roll < 20 then 'web'
            when roll < 60 then 'app'
            else 'store'
        end as channel,
        case
            when roll < 20 then 'purchase'
            when roll < 35 then 'purchase'
            when roll < 55 then ['share', 'review', 'check_in'][1 + cast(hash(i, 'engage') % 3 as integer)]
            when roll < 60 then 'redeem'
            when roll < 96 then 'purchase'
            when roll < 98 then 'return'
            else 'redeem'
        end as event_type
    from numbered
)
select
    channel || ':E' || i as event_id,
    customer_id,
    channel,
    'E' || i as source_event_id,
    'R' || i as source_record_id,
    event_type,
    case when channel = 'web' and hash(i, 'refund') % 20 = 0 then 'refunded' else 'completed' end as status,
    occurred_at,
    cast(occurred_at as date) as occurred_on,
    case when event_type in ('purchase', 'return') then cast(5 + hash(i, 'amount') % 20000 / 100.0 as decimal(18, 2)) end as amount,
    case when event_type = 'redeem' then cast(100 * (1 + hash(i, 'points') % 10) as bigint) end as points,
    case when channel = 'web' and hash(i, 'refund') % 20 = 0 then occurred_at + interval 10 day end as refunded_at,
    event_type = 'purchase' and not (channel = 'web' and hash(i, 'refund') % 20 = 0) as is_completed_purchase,
    cast(null as varchar) as membership_plan
from typed;
"""

MODELS = [
    *BEFORE_POINT_MOVEMENTS,
    "loyalty/point_movements",
    "settle",
    "loyalty/ledger",
    "loyalty/balances",
]


# What the loyalty stage reads from the stages before it (and privacy's erasures).
WAREHOUSE_INPUTS = [
    "core.events",
    "core.customers",
    "identity.match_input",
    "identity.source_records",
    "privacy.erased_records",
    "staging.web_customers",
    "staging.app_users",
]
# Only the columns the stage reads of tables holding personal data.
INPUT_COLUMNS = {
    "staging.web_customers": "source, source_record_id, registered_at, referral_code, referred_by",
    "staging.app_users": "source, source_record_id, registered_at, referral_code, referred_by",
}


def copy_inputs(source: Path, warehouse: Path) -> None:
    """The loyalty stage's inputs, copied out of a built warehouse (opened read-only)."""
    import duckdb

    con = duckdb.connect(str(warehouse))
    con.execute(f"attach '{source}' as source (read_only)")
    for table in WAREHOUSE_INPUTS:
        con.execute(f"create schema if not exists {table.split('.')[0]}")
        columns = INPUT_COLUMNS.get(table, "*")
        con.execute(f"create table {table} as select {columns} from source.{table}")
    con.close()


def stage_inputs(warehouse: Path, customers: int, events: int) -> None:
    import duckdb

    con = duckdb.connect(str(warehouse))
    con.execute(INPUTS_SQL.format(customers=customers, events=events))
    con.close()


def stage_loyalty(warehouse: Path, report: Path, as_of: date = AS_OF) -> None:
    """Build the loyalty stage; write each step's seconds and the tables' sizes to `report` as JSON."""
    from assets.loyalty.program import load_program, write_program_tables
    from assets.loyalty.settling import broken_invariants, settle_debits
    from assets.privacy.erasure import create_privacy_tables
    from assets.shared.warehouse import connect, row_count, run_model

    con = connect(warehouse, {"as_of": as_of})
    create_privacy_tables(con)  # generated inputs erase nobody; a copied warehouse has its own
    write_program_tables(con, load_program())
    steps = {}
    for model in MODELS:
        started = time.perf_counter()
        if model == "settle":
            steps["settling rounds"] = settle_debits(con)
        else:
            run_model(con, model)
        steps[model] = round(time.perf_counter() - started, 2)
    sizes = {
        table: row_count(con, table)
        for table in ("core.events", "loyalty.ledger", "loyalty.debits")
    }
    report.write_text(
        json.dumps({"steps": steps, "sizes": sizes, "broken": broken_invariants(con)})
    )
    con.close()


def child(*args: str) -> list[str]:
    return [str(BIN / "python"), "-m", "tests.benchmarks.bench_loyalty", "--stage", *args]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--warehouse", type=Path, help="copy the inputs out of this built warehouse"
    )
    parser.add_argument("--as-of", type=date.fromisoformat, default=AS_OF)
    parser.add_argument("--stage", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        name, *rest = args.stage
        if name == "inputs":
            stage_inputs(Path(rest[0]), int(rest[1]), int(rest[2]))
        elif name == "copy":
            copy_inputs(Path(rest[0]), Path(rest[1]))
        else:
            stage_loyalty(Path(rest[0]), Path(rest[1]), date.fromisoformat(rest[2]))
        return

    import subprocess

    work = Path(tempfile.mkdtemp(prefix="omniloyal-loyalty-"))
    try:
        inputs, warehouse = work / "inputs.duckdb", work / "w.duckdb"
        if args.warehouse:
            subprocess.run(child("copy", str(args.warehouse), str(inputs)), check=True)
        else:
            subprocess.run(
                child("inputs", str(inputs), str(args.customers), str(args.events)), check=True
            )
        runs, cpu = [], []
        for _ in range(args.runs):
            shutil.copy(inputs, warehouse)
            reference = reference_seconds()
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            seconds, peak = run_timed(
                child("loyalty", str(warehouse), str(work / "report.json"), args.as_of.isoformat())
            )
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime)
            runs.append((seconds, peak, reference, json.loads((work / "report.json").read_text())))
            print(
                f"run: {seconds:.1f} s, {cpu[-1]:.1f} CPU s, {peak:.2f} GB, reference {reference:.2f} s",
                file=sys.stderr,
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = [r[0] for r in runs]
    detail = runs[-1][3]
    print(
        "| events | ledger entries | debits | median s | min-max s | median ratio to reference | peak GB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {detail['sizes']['core.events']:,} | {detail['sizes']['loyalty.ledger']:,} | {detail['sizes']['loyalty.debits']:,} | "
        f"{median(seconds):.1f} | {min(seconds):.1f}-{max(seconds):.1f} | "
        f"{median([s / r for s, _, r, _ in runs]):.1f}x | {max(r[1] for r in runs):.2f} |"
    )
    print()
    print("Steps of one run (s): " + ", ".join(f"{k} {v}" for k, v in detail["steps"].items()))
    print("Broken invariants: " + json.dumps(detail["broken"]))
    print(
        f"CPU seconds (user + system): median {median(cpu):.1f}, runs "
        + ", ".join(f"{c:.1f}" for c in cpu)
    )


if __name__ == "__main__":
    main()
