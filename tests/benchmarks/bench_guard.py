"""What each part of the conflict guard's rule does, on every evaluation set.

    .venv/bin/python -m tests.benchmarks.bench_guard --work /tmp/bench [--datasets febrl1 febrl2 febrl3 uk:20000 us:20000]

The rule (macro are_two_people in assets/shared/macros.sql) has two parts, each a macro of its
own there: birth dates more than one typo apart (A, birth_dates_conflict), first names that
are neither the same given name nor a typo apart, names swapped excepted (B,
first_names_conflict). The product enforces each part only where the data backs it
(conflict_guard.measure_rule). For each data set (prepared as bench_identity does, inboxes
kept in --work) identity resolution runs with the measured rule, with both parts always,
with each part alone and with no part (stewards only), and is scored against the truth.
Only the guard changes: match_input's shared-identifier flags stay as prepared. Prints
Markdown for docs/benchmarks.md, with the evidence each part was judged on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

from assets.identity.conflict_guard import GuardRule
from tests.benchmarks.bench_identity import stage_prepare, write_dataset

VARIANTS = {
    "measured (the product)": None,
    "A or B, always": GuardRule(birth_dates=True, first_names=True),
    "A: birth dates only": GuardRule(birth_dates=True, first_names=False),
    "B: first names only": GuardRule(birth_dates=False, first_names=True),
    "no rule": GuardRule(birth_dates=False, first_names=False),
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
    from assets.identity.matching import match_records

    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--datasets", nargs="+", default=["febrl1", "febrl2", "febrl3", "uk:20000", "us:20000"]
    )
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    results, measured = {}, {}
    for name in args.datasets:
        folder = args.work / name.replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        inbox, truth = write_dataset(name, folder, args.seed)
        prepared = folder / "guard.duckdb"
        prepared.unlink(missing_ok=True)
        stage_prepare(inbox, prepared)
        with duckdb.connect(str(prepared), read_only=True) as con:
            records = con.sql("select * from identity.match_input").to_arrow_table()
        for variant, rule in VARIANTS.items():
            result = match_records(records, guard=rule)
            results[(name, variant)] = scores(records, result.clusters, truth)
            if rule is None:
                measured[name] = result.guard
        prepared.unlink()
    print("| rule | " + " | ".join(args.datasets) + " | worst F1 |")
    print("|---|" + "---:|" * (len(args.datasets) + 1))
    for variant in VARIANTS:
        cells = [results[(name, variant)] for name in args.datasets]
        print(
            f"| {variant} | "
            + " | ".join(f"P {p:.3f} R {r:.3f} F1 **{f:.3f}**" for p, r, f in cells)
            + f" | {min(f for _, _, f in cells):.3f} |"
        )
    print()
    print(
        "| data set | part | evident pairs | would split | evident identifiers | would split | "
        "share's lower bound | enforced |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, rule in measured.items():
        for part, label in (("birth_dates", "A: birth dates"), ("first_names", "B: first names")):
            e = rule.evidence[part]
            print(
                f"| {name} | {label} | {e['evident_pairs']:,} | {e['contradicted_pairs']:,} "
                f"| {e['evident_identifiers']:,} | {e['contradicted_identifiers']:,} "
                f"({e['contradicted_identifiers'] / max(e['evident_identifiers'], 1):.1%}) "
                f"| {e['share_lower_bound']:.1%} | {'yes' if e['enforced'] else 'no'} |"
            )


if __name__ == "__main__":
    main()
