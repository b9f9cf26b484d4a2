"""Where identity resolution loses recall: every true pair of a data set, by what became of it.

    .venv/bin/python -m tests.benchmarks.why_missed --work data/bench --dataset febrl2

found (in one customer), cut by the conflict guard, scored 0.5-0.99, scored below 0.5, or
not a candidate (no blocking rule proposed it). Uses the inboxes bench_identity keeps in --work.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import duckdb
from splink import DuckDBAPI, Linker

from tests.benchmarks.bench_identity import stage_prepare, write_dataset

OUTCOMES = """
with
truth as (
    select t.source || ':' || t.source_record_id as unique_id, person_id
    from read_csv('{truth}', all_varchar = true) as t
    where t.source || ':' || t.source_record_id in (select unique_id from records)
),
true_pairs as (
    select a.unique_id as unique_id_l, b.unique_id as unique_id_r
    from truth a join truth b on a.person_id = b.person_id and a.unique_id < b.unique_id
)
select
    case
        when coalesce(l.cluster_id, p.unique_id_l) = coalesce(r.cluster_id, p.unique_id_r) then 'found'
        when evidence.is_linked = false then 'cut by the conflict guard'
        when scored.unique_id_l is null then 'not a candidate'
        when scored.match_probability < 0.5 then 'scored below 0.5'
        else 'scored 0.5-0.99'
    end as outcome,
    count(*) as pairs
from true_pairs p
left join evidence using (unique_id_l, unique_id_r)
left join scored using (unique_id_l, unique_id_r)
left join clusters l on l.unique_id = p.unique_id_l
left join clusters r on r.unique_id = p.unique_id_r
group by 1
order by 2 desc
"""


def main() -> None:
    from assets.matching import match_records

    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    folder = args.work / args.dataset.replace(":", "_")
    folder.mkdir(parents=True, exist_ok=True)
    inbox, truth = write_dataset(args.dataset, folder, args.seed)
    prepared = folder / "why.duckdb"
    prepared.unlink(missing_ok=True)
    stage_prepare(inbox, prepared)
    with duckdb.connect(str(prepared), read_only=True) as con:
        records = con.sql("select * from identity.match_input").to_arrow_table()
    prepared.unlink()
    result = match_records(records)
    # Every candidate pair's probability under the final model, for the ones the threshold dropped.
    linker = Linker(DuckDBAPI().register(records), result.model_json, log_level=logging.ERROR)
    scored = linker.inference.predict().as_duckdbpyrelation().select("unique_id_l, unique_id_r, match_probability").to_arrow_table()
    con = duckdb.connect()
    for name, table in (("records", records), ("evidence", result.evidence), ("clusters", result.clusters), ("scored", scored)):
        con.register(name, table)
    print("| outcome | true pairs |\n|---|---:|")
    for outcome, pairs in con.execute(OUTCOMES.format(truth=truth)).fetchall():
        print(f"| {outcome} | {pairs:,} |")


if __name__ == "__main__":
    main()
