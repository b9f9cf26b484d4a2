"""What each part of the conflict guard's rule does, on every evaluation set.

    .venv/bin/python -m tests.benchmarks.bench_guard --work /tmp/bench [--datasets febrl1 febrl2 febrl3 uk:20000 us:20000]

The rule (macro are_two_people in assets/sql/macros.sql) has two parts, each a macro of its
own there: birth dates more than one typo apart (A, birth_dates_conflict), first names that
are neither the same given name nor a typo apart, names swapped excepted (B,
first_names_conflict). For each data set (prepared as bench_identity does,
inboxes kept in --work) identity resolution runs with the guard as it is (A or B), with
each part alone, with both required (A and B), and with no rule at all (stewards only),
and is scored against the truth. Only the guard changes: match_input's shared-identifier
flags, which use the same macro, stay as prepared. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

from tests.benchmarks.bench_identity import stage_prepare, write_dataset

BIRTH_DATES = "birth_dates_conflict(birth_a, birth_b)"
FIRST_NAMES = "first_names_conflict(first_a, canonical_a, last_a, first_b, canonical_b, last_b)"
VARIANTS = {
    "A or B (the rule)": f"{BIRTH_DATES} or {FIRST_NAMES}",
    "A: birth dates only": BIRTH_DATES,
    "B: first names only": FIRST_NAMES,
    "A and B": f"{BIRTH_DATES} and {FIRST_NAMES}",
    "no rule": "false",
}


def scores(records, clusters, truth: Path) -> tuple[float, float, float]:
    con = duckdb.connect()
    con.register("records", records)
    con.register("clusters", clusters)
    predicted, true, correct = con.execute(
        f"""
        with
        truth as (select source || ':' || source_record_id as unique_id, person_id from read_csv('{truth}', all_varchar = true)),
        joined as (
            select coalesce(clusters.cluster_id, records.unique_id) as customer, truth.person_id
            from records left join clusters using (unique_id) join truth using (unique_id)
        ),
        cells as (select customer, person_id, count(*) as n from joined group by all)
        select (select sum(n * (n - 1) / 2) from (select sum(n) as n from cells group by customer)),
               (select sum(n * (n - 1) / 2) from (select sum(n) as n from cells group by person_id)),
               (select sum(n * (n - 1) / 2) from cells)
        """
    ).fetchall()[0]
    precision, recall = correct / predicted, correct / true
    return precision, recall, 2 * precision * recall / (precision + recall)


def main() -> None:
    import assets.conflict_guard as guard
    from assets.matching import match_records

    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["febrl1", "febrl2", "febrl3", "uk:20000", "us:20000"])
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    parts = guard.sql_macros(("birth_dates_conflict", "first_names_conflict"))
    results = {}
    for name in args.datasets:
        folder = args.work / name.replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        inbox, truth = write_dataset(name, folder, args.seed)
        prepared = folder / "guard.duckdb"
        prepared.unlink(missing_ok=True)
        stage_prepare(inbox, prepared)
        with duckdb.connect(str(prepared), read_only=True) as con:
            records = con.sql("select * from identity.match_input").to_arrow_table()
        for variant, body in VARIANTS.items():
            guard.sql_macros = lambda _names=None, body=body: [*parts, (
                "create or replace temp macro are_two_people(first_a, canonical_a, last_a, birth_a, "
                f"first_b, canonical_b, last_b, birth_b) as {body}"
            )]
            results[(name, variant)] = scores(records, match_records(records).clusters, truth)
        prepared.unlink()
    print("| rule | " + " | ".join(args.datasets) + " | worst F1 |")
    print("|---|" + "---:|" * (len(args.datasets) + 1))
    for variant in VARIANTS:
        cells = [results[(name, variant)] for name in args.datasets]
        print(f"| {variant} | " + " | ".join(f"P {p:.3f} R {r:.3f} F1 **{f:.3f}**" for p, r, f in cells)
              + f" | {min(f for _, _, f in cells):.3f} |")


if __name__ == "__main__":
    main()
