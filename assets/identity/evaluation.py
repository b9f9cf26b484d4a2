"""Accuracy of identity resolution against a truth file (source, source_record_id, person_id).

Only records present in both the warehouse and the truth count (quarantined rows are
in the truth but never reached matching). Everything is computed from the sizes of
(customer, person) cells, so it is linear in the number of records:

- pairwise: a pair of records is predicted when they share a customer_id and true when
  they share a person_id; precision, recall and F1 over pairs.
- B-cubed: per record, the share of its customer that is the same person (precision)
  and the share of its person found in its customer (recall), averaged over records.

`hard_cases` adds the share of pairs put in one customer for the cases that break
naive matching (HARD_CASES), so a change to the model shows which case it moved.
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


# Pairs of records in a hard case: a join condition over records `a` and `b` (each
# identity.match_input with the truth's person_id and the warehouse's customer_id).
# For each, `hard_cases` reports how many such pairs there are and the share put in one
# customer: near 0 is right where the two are different people, near 1 where they are one.
HARD_CASES = {
    # Different people behind one phone: a household, twins, a shop's default number.
    "different people sharing a phone": "a.phone_e164 = b.phone_e164 and a.person_id < b.person_id",
    # Twins: different people with one last name and birth date (and often an address).
    "different people sharing last name and birth date": "a.last_name_key = b.last_name_key and a.birth_on = b.birth_on and a.person_id < b.person_id",
    # One person who opened a second web account, usually with another mailbox.
    "one person's two web accounts": "a.person_id = b.person_id and a.source = 'web' and b.source = 'web' and a.unique_id < b.unique_id",
    # One person as Bob on one record and Robert on another, sharing a phone or mailbox.
    "one person under a nickname and a given name": "a.person_id = b.person_id and a.unique_id < b.unique_id"
    " and a.canonical_first_name = b.canonical_first_name and a.first_name_key <> b.first_name_key"
    " and (a.phone_e164 = b.phone_e164 or a.email_key = b.email_key)",
}


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
        con.execute(
            "create table truth as select * from read_csv(?, header = true, all_varchar = true)",
            [str(truth)],
        )
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


def hard_cases(warehouse: str | Path, truth: str | Path) -> dict[str, tuple[int, float]]:
    """For each of HARD_CASES: (pairs of records in the case, share of them in one customer)."""
    con = duckdb.connect()
    try:
        con.execute("attach ? as wh (read_only)", [str(warehouse)])
        con.execute(
            "create table truth as select * from read_csv(?, header = true, all_varchar = true)",
            [str(truth)],
        )
        con.execute(
            """
            create table records as
            select match_input.*, truth.person_id, source_records.customer_id
            from wh.identity.match_input
            join truth using (source, source_record_id)
            join wh.identity.source_records using (source, source_record_id)
            """
        )
        found = {}
        for case, condition in HARD_CASES.items():
            pairs, together = con.execute(
                f"select count(*), count(*) filter (where a.customer_id = b.customer_id) "
                f"from records a join records b on {condition}"
            ).fetchall()[0]
            found[case] = (pairs, together / pairs if pairs else 0.0)
    finally:
        con.close()
    return found
