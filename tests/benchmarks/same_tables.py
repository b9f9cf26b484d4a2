"""Do two warehouses hold the same tables? For checking that a refactor changed no result.

    .venv/bin/python -m tests.benchmarks.same_tables BEFORE.duckdb AFTER.duckdb

Run the pipeline on one inbox with a fixed --as-of before and after the change, then
compare: every table of either file, its columns, and its rows as a multiset (`except all`
both ways) on the columns both have. Columns that record when a run happened
(`--clock-columns`, by default the ingestion, quarantine and duplicate-detection times) are
left out. Prints one line per table; exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

CLOCK_COLUMNS = ("ingested_at", "seen_at", "quarantined_at", "found_at")


def tables(con: duckdb.DuckDBPyConnection, alias: str) -> dict[str, list[str]]:
    rows = con.execute(
        "select table_schema || '.' || table_name, list(column_name order by ordinal_position) "
        "from information_schema.columns where table_catalog = ? group by all",
        [alias],
    ).fetchall()
    return dict(rows)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--clock-columns", nargs="*", default=list(CLOCK_COLUMNS))
    args = parser.parse_args()
    con = duckdb.connect()
    con.execute(f"attach '{args.before}' as before (read_only)")
    con.execute(f"attach '{args.after}' as after (read_only)")
    before, after = tables(con, "before"), tables(con, "after")
    differing = 0
    for table in sorted(before.keys() | after.keys()):
        if table not in before or table not in after:
            print(f"{table}: only in {'after' if table in after else 'before'}")
            differing += 1
            continue
        note = ""
        if before[table] != after[table]:
            removed = [c for c in before[table] if c not in after[table]]
            added = [c for c in after[table] if c not in before[table]]
            note = f" (columns removed: {removed or 'none'}, added: {added or 'none'}; rows compared on the others)"
            differing += 1
        columns = ", ".join(
            f'"{c}"' for c in before[table] if c in after[table] and c not in args.clock_columns
        )
        counts = []
        for first, second in (("before", "after"), ("after", "before")):
            counts.append(
                con.execute(
                    f"select count(*) from (select {columns} from {first}.{table} except all select {columns} from {second}.{table})"
                ).fetchall()[0][0]
            )
        rows = con.execute(f"select count(*) from before.{table}").fetchall()[0][0]
        if any(counts):
            print(
                f"{table}: {counts[0]} rows only before, {counts[1]} only after (of {rows}){note}"
            )
            differing += 0 if note else 1
        else:
            print(f"{table}: same {rows} rows{note}")
    print(f"{differing} of {len(before.keys() | after.keys())} tables differ")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
