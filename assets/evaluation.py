"""Accuracy of identity resolution against a truth file (source, source_record_id, person_id).

Only records present in both the warehouse and the truth count (quarantined rows are
in the truth but never reached matching). Everything is computed from the sizes of
(customer, person) cells, so it is linear in the number of records:

- pairwise: a pair of records is predicted when they share a customer_id and true when
  they share a person_id; precision, recall and F1 over pairs.
- B-cubed: per record, the share of its customer that is the same person (precision)
  and the share of its person found in its customer (recall), averaged over records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

METRICS_SQL = """
with

joined as (
    select records.customer_id, truth.person_id
    from wh.identity.source_records as records
    join truth
        on truth.source = records.source
        and truth.source_record_id = records.source_record_id
),

cells as (
    select customer_id, person_id, count(*) as n from joined group by all
),

customers as (select customer_id, sum(n) as n from cells group by all),
people as (select person_id, sum(n) as n from cells group by all),

cells_sized as (
    select cells.n, customers.n as customer_n, people.n as person_n
    from cells
    join customers using (customer_id)
    join people using (person_id)
)

select
    (select count(*) from joined) as records,
    (select count(*) from customers) as customers,
    (select count(*) from people) as people,
    (select sum(n * (n - 1) / 2) from customers) as predicted_pairs,
    (select sum(n * (n - 1) / 2) from people) as true_pairs,
    (select sum(n * (n - 1) / 2) from cells) as correct_pairs,
    (select sum(n * n / customer_n) / sum(n) from cells_sized) as bcubed_precision,
    (select sum(n * n / person_n) / sum(n) from cells_sized) as bcubed_recall
"""


@dataclass(frozen=True)
class Accuracy:
    records: int
    customers: int
    people: int
    predicted_pairs: int
    true_pairs: int
    correct_pairs: int
    precision: float
    recall: float
    f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float

    def as_dict(self) -> dict:
        return asdict(self)


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def evaluate(warehouse: str | Path, truth: str | Path) -> Accuracy:
    con = duckdb.connect()
    try:
        con.execute("attach ? as wh (read_only)", [str(warehouse)])
        con.execute("create table truth as select * from read_csv(?, header = true, all_varchar = true)", [str(truth)])
        row = con.execute(METRICS_SQL).fetchall()[0]
    finally:
        con.close()
    records, customers, people, predicted, true, correct, b3p, b3r = row
    predicted, true, correct = int(predicted or 0), int(true or 0), int(correct or 0)
    precision = correct / predicted if predicted else 1.0
    recall = correct / true if true else 1.0
    return Accuracy(
        records=records,
        customers=customers,
        people=people,
        predicted_pairs=predicted,
        true_pairs=true,
        correct_pairs=correct,
        precision=precision,
        recall=recall,
        f1=_f1(precision, recall),
        bcubed_precision=float(b3p or 0),
        bcubed_recall=float(b3r or 0),
        bcubed_f1=_f1(float(b3p or 0), float(b3r or 0)),
    )
