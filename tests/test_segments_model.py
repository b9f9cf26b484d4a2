"""The RFM segments model on small hand-built inputs.

Each expected value below is computed by hand from the rows in the fixture. The points
ledger and balances have their own scenarios in test_points_ledger.py.
"""

from datetime import date

import pytest

from assets.program import load_program, write_program_tables
from assets.warehouse import SQL_DIR, connect, run_model

AS_OF = date(2026, 6, 30)

# customer, channel, event id, type, status, occurred_at, amount
EVENTS = [
    ("C1", "web", "O1", "purchase", "completed", "2026-06-01 10:00:00", 100.40),
    ("C1", "store", "T1", "purchase", "completed", "2026-05-01 10:00:00", 200.99),
    ("C1", "web", "O2", "purchase", "refunded", "2026-05-02 10:00:00", 50.00),
    ("C1", "web", "O3", "purchase", "cancelled", "2026-05-03 10:00:00", 70.00),
    ("C2", "app", "E1", "purchase", "completed", "2025-01-15 10:00:00", 900.00),  # outside 12 months
    ("C2", "app", "E2", "purchase", "completed", "2026-01-15 10:00:00", 300.00),
    ("C2", "app", "E3", "share", "completed", "2026-01-16 10:00:00", None),
    ("C3", "store", "T2", "purchase", "completed", "2026-07-01 10:00:00", 5000.00),  # after as-of
    (None, "store", "T3", "purchase", "completed", "2026-06-01 10:00:00", 10.00),  # anonymous
]


@pytest.fixture
def con():
    con = connect(":memory:", {"as_of": AS_OF})
    con.execute((SQL_DIR / "macros.sql").read_text())
    write_program_tables(con, load_program())
    con.execute("create table core.customers as select * from (values ('C1'), ('C2'), ('C3'), ('C4')) t(customer_id)")
    con.execute(
        """
        create table core.events (
            event_id varchar, customer_id varchar, channel varchar, source_event_id varchar, event_type varchar,
            status varchar, occurred_at timestamp, occurred_on date, amount decimal(18, 2), points bigint,
            is_completed_purchase boolean)
        """
    )
    con.executemany(
        "insert into core.events values ($2 || ':' || $3, $1, $2, $3, $4, $5, $6, cast($6 as date), $7, null, $4 = 'purchase' and $5 = 'completed')",
        EVENTS,
    )
    run_model(con, "marts/segments")
    yield con
    con.close()


def test_rfm_scores_and_segments(con):
    rows = con.execute(
        "select customer_id, recency_days, frequency, monetary::double, r_score, f_score, m_score, rfm_segment "
        "from marts.segments order by 1"
    ).fetchall()
    # Two buyers: percent_rank is 0 for the lower and 1 for the higher value -> scores 1 and 5;
    # ties share a score: both bought twice, so both get F 1.
    # C1: last bought 2026-06-01 (29 days ago), 301.39 -> R5 F1 M1 -> fm (1+1)/2 = 1 -> New.
    # C2: last bought 2026-01-15 (166 days ago), 1200 -> R1 F1 M5 -> fm (1+5)/2 = 3 -> At Risk.
    assert rows == [
        ("C1", 29, 2, 301.39, 5, 1, 1, "New"),
        ("C2", 166, 2, 1200.0, 1, 1, 5, "At Risk"),
        ("C3", None, 0, 0.0, None, None, None, "Prospect"),
        ("C4", None, 0, 0.0, None, None, None, "Prospect"),
    ]
