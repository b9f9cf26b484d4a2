"""Where identity resolution loses recall: every true pair of a data set, by what became of it.

    .venv/bin/python -m tests.benchmarks.why_missed --work data/bench --dataset febrl2

found (in one customer), cut by the conflict guard, scored 0.5-0.99, scored below 0.5, or
not a candidate (no blocking rule proposed it). Uses the inboxes bench_identity keeps in --work.

Then what linking by the name alone could still add: record pairs that agree exactly on the
full name and have nothing else to compare (no phone, mailbox, birth date or postcode on
both records), by how many records carry the name, with how many of them are one person
(from the truth), and the pairwise precision, recall and F1 if every such pair were linked,
rarest names first. An estimate of what the data allows at best: a model cannot pick the
right pairs within a bucket either, and links chain (a linked pair joins two whole
customers), which this ignores.
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

NAME_ONLY = """
with
truth as (
    select t.source || ':' || t.source_record_id as unique_id, person_id
    from read_csv('{truth}', all_varchar = true) as t
),
named as (
    select records.*, truth.person_id, coalesce(clusters.cluster_id, records.unique_id) as customer,
           count(*) over (partition by full_name_key) as carried_by
    from records join truth using (unique_id) left join clusters using (unique_id)
    where full_name_key is not null
),
name_only as (
    select a.carried_by, a.person_id = b.person_id as is_match, a.customer = b.customer as is_linked
    from named a
    join named b on a.full_name_key = b.full_name_key and a.unique_id < b.unique_id
    where a.carried_by <= 40
        and (a.phone_e164 is null or b.phone_e164 is null) and (a.email_key is null or b.email_key is null)
        and (a.birth_on is null or b.birth_on is null) and (a.postcode is null or b.postcode is null)
)
select
    case when carried_by <= 2 then '2' when carried_by <= 4 then '3-4' when carried_by <= 8 then '5-8'
         when carried_by <= 16 then '9-16' else '17-40' end as records_with_the_name,
    count(*) as pairs,
    avg(is_match::int) as match_share,
    count(*) filter (where is_match and not is_linked) as true_pairs_to_gain,
    count(*) filter (where not is_match and not is_linked) as false_pairs_to_add
from name_only
group by 1
order by min(carried_by)
"""

FOUND = """
with
truth as (select t.source || ':' || t.source_record_id as unique_id, person_id from read_csv('{truth}', all_varchar = true) as t),
joined as (
    select coalesce(clusters.cluster_id, records.unique_id) as customer, truth.person_id
    from records left join clusters using (unique_id) join truth using (unique_id)
),
cells as (select customer, person_id, count(*) as n from joined group by all)
select (select sum(n * (n - 1) / 2) from (select sum(n) as n from cells group by customer)),
       (select sum(n * (n - 1) / 2) from (select sum(n) as n from cells group by person_id)),
       (select sum(n * (n - 1) / 2) from cells)
"""


def main() -> None:
    from assets.identity.matching import match_records

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
    scored = (
        linker.inference.predict()
        .as_duckdbpyrelation()
        .select("unique_id_l, unique_id_r, match_probability")
        .to_arrow_table()
    )
    con = duckdb.connect()
    for name, table in (
        ("records", records),
        ("evidence", result.evidence),
        ("clusters", result.clusters),
        ("scored", scored),
    ):
        con.register(name, table)
    print("| outcome | true pairs |\n|---|---:|")
    for outcome, pairs in con.execute(OUTCOMES.format(truth=truth)).fetchall():
        print(f"| {outcome} | {pairs:,} |")
    predicted, true, correct = con.execute(FOUND.format(truth=truth)).fetchall()[0]
    print(f"\nNow: precision {correct / predicted:.4f}, recall {correct / true:.4f}.\n")
    print(
        "| records with the name | name-only pairs | one person | true pairs to gain | false pairs to add "
        "| linking these and all above: precision | recall | F1 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for bucket, pairs, share, gain, add in con.execute(NAME_ONLY.format(truth=truth)).fetchall():
        correct, predicted = correct + gain, predicted + gain + add
        precision, recall = correct / predicted, correct / true
        print(
            f"| {bucket} | {pairs:,} | {share:.1%} | {gain:,} | {add:,} | {precision:.4f} | {recall:.4f} "
            f"| {2 * precision * recall / (precision + recall):.4f} |"
        )


if __name__ == "__main__":
    main()
