"""Paid membership on small hand-built scenarios: the periods fees buy, their status, and the
`membership` bonus on purchases inside them. Every expected number is worked out in the
comments from the events below and PROGRAM (web earns 1 point per unit; Silver 1.5, Gold 2)."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from loyalty_models import build_ledger

from assets.loyalty.program import ProgramError, load_program, write_program_tables
from assets.privacy.erasure import create_privacy_tables
from assets.shared.warehouse import connect, run_model

PROGRAM = """
currency: GBP
earning: {points_per_currency_unit: {web: 1, app: 1, store: 1}}
bonuses:
  enrolment_points: 0
  birthday_multiplier: 1
  engagement: {points_per_event: {}, daily_cap: 0}
expiry: {months: 12}
tiers:
  qualify_on: spend
  window_months: 12
  downgrade_grace_months: 3
  levels:
    - {name: Member, threshold: 0, earn_multiplier: 1}
    - {name: Silver, threshold: 500, earn_multiplier: 1.5}
    - {name: Gold, threshold: 1000, earn_multiplier: 2}
segments:
  lifecycle_days: {new: 30, active: 90, at_risk: 180, lapsed: 365}
  value_bands: [{name: All, up_to_share: 1}]
  engagement_levels: [{name: Any, min_events_90d: 0}]
  close_to_next_tier_share: 0.1
rfm_segments: [{name: All, r: [1, 5], fm: [1, 5]}]
memberships:
  plans:
    - {name: Plus, price: 5, months: 1, earn_multiplier: 1.5, renews: true}
    - {name: Gold Pass, price: 40, months: 12, tier: Gold, renews: false}
"""
AS_OF = date(2026, 6, 30)

# order id, customer, event_type, status, occurred_at, amount, refund known at, membership plan
EVENTS = [
    # REFUND buys Plus on 1 March and has the fee refunded on 10 March.
    (
        "FA",
        "REFUND",
        "membership_fee",
        "refunded",
        "2026-03-01 10:00",
        5,
        "2026-03-10 00:00",
        "Plus",
    ),
    ("A1", "REFUND", "purchase", "completed", "2026-03-05 12:00", 100, None, None),  # before: +50
    ("A2", "REFUND", "purchase", "completed", "2026-03-20 12:00", 100, None, None),  # after: 0
    # RENEW: Plus on 15 Jan, renewed the moment it ends, then a fee 17 days after the second ended.
    ("FB1", "RENEW", "membership_fee", "completed", "2026-01-15 09:00", 5, None, "Plus"),
    ("FB2", "RENEW", "membership_fee", "completed", "2026-02-15 09:00", 5, None, "Plus"),
    ("FB3", "RENEW", "membership_fee", "completed", "2026-04-01 09:00", 5, None, "Plus"),
    (
        "B1",
        "RENEW",
        "purchase",
        "completed",
        "2026-02-20 12:00",
        33.50,
        None,
        None,
    ),  # in FB2: 33 -> +16
    ("B2", "RENEW", "purchase", "completed", "2026-03-16 12:00", 80, None, None),  # between: 0
    (
        "B3",
        "RENEW",
        "purchase",
        "completed",
        "2026-04-10 12:00",
        10.99,
        None,
        None,
    ),  # in FB3: 10 -> +5
    # ACTIVE: Plus bought 10 days before the as-of date.
    ("FC", "ACTIVE", "membership_fee", "completed", "2026-06-20 08:00", 5, None, "Plus"),
    ("C1", "ACTIVE", "purchase", "completed", "2026-06-25 12:00", 21, None, None),  # 21 -> +10
    # TIERPASS holds Silver (600 spent in December) and buys the Gold Pass on 1 January.
    ("T0", "TIERPASS", "purchase", "completed", "2025-12-01 12:00", 600, None, None),  # before: 0
    ("FD", "TIERPASS", "membership_fee", "completed", "2026-01-01 10:00", 40, None, "Gold Pass"),
    ("T1", "TIERPASS", "purchase", "completed", "2026-02-01 12:00", 101, None, None),
    ("T2", "TIERPASS", "purchase", "refunded", "2026-03-01 12:00", 40, "2026-03-05 12:00", None),
    # UNKNOWN pays for a plan the program does not have: no benefit.
    ("FE", "UNKNOWN", "membership_fee", "completed", "2026-05-01 10:00", 9, None, "Diamond"),
    ("E1", "UNKNOWN", "purchase", "completed", "2026-05-10 12:00", 50, None, None),
]


def load_inputs(con) -> None:
    create_privacy_tables(con)
    con.execute(
        "create or replace table core.customers (customer_id varchar, birth_on date, first_registered_at timestamp)"
    )
    customers = sorted({event[1] for event in EVENTS})
    con.executemany(
        "insert into core.customers values (?, date '1980-09-01', timestamp '2023-01-01')",
        [[c] for c in customers],
    )
    con.execute(
        """
        create or replace table core.events as
        select 'web:' || order_id as event_id, customer_id, 'web' as channel, order_id as source_event_id,
               customer_id || '-record' as source_record_id, event_type, status,
               occurred_at::timestamp as occurred_at, occurred_at::timestamp::date as occurred_on,
               amount::decimal(18, 2) as amount, null::bigint as points, refunded_at::timestamp as refunded_at,
               event_type = 'purchase' and status = 'completed' as is_completed_purchase, membership_plan
        from events_frame
        """.replace("events_frame", _values(EVENTS))
    )
    con.execute(
        "create or replace table identity.match_input (unique_id varchar, source varchar, source_record_id varchar, registered_at timestamp)"
    )
    con.execute(
        "create or replace table identity.source_records (source varchar, source_record_id varchar, customer_id varchar)"
    )


def _values(rows) -> str:
    def literal(value):
        return "null" if value is None else f"'{value}'" if isinstance(value, str) else str(value)

    body = ", ".join("(" + ", ".join(map(literal, row)) + ")" for row in rows)
    return (
        f"(values {body}) as t(order_id, customer_id, event_type, status, occurred_at, amount, "
        "refunded_at, membership_plan)"
    )


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    path = tmp_path_factory.mktemp("program") / "program.yaml"
    path.write_text(PROGRAM)
    con = connect(":memory:")
    load_inputs(con)
    con.execute(f"set variable as_of = '{AS_OF.isoformat()}'::date")
    write_program_tables(con, load_program(path))
    build_ledger(con)
    yield con
    con.close()


def memberships(con, customer: str) -> list[tuple]:
    return con.execute(
        "select order_id, starts_at, ends_at, is_renewal, is_renewed, status from loyalty.memberships "
        "where customer_id = ? order by paid_at",
        [customer],
    ).fetchall()


def ledger(con, customer: str, rule: str) -> list[tuple]:
    return con.execute(
        "select source_event_id, entry_type, points from loyalty.ledger where customer_id = ? and rule = ? "
        "order by occurred_at, entry_type",
        [customer, rule],
    ).fetchall()


def test_a_refunded_fee_ends_the_membership_at_the_refund(con):
    assert memberships(con, "REFUND") == [
        ("FA", datetime(2026, 3, 1, 10), datetime(2026, 3, 10), False, False, "refunded")
    ]
    # A1 (5 March) is inside, before the refund: floor(100 x 0.5) = 50. A2 (20 March) is
    # inside the month bought but after the refund: nothing.
    assert ledger(con, "REFUND", "membership") == [("A1", "bonus", 50)]


def test_a_renewal_then_a_lapse_and_only_purchases_inside_a_period_earn(con):
    assert memberships(con, "RENEW") == [
        # FB2 paid the moment FB1 ended: a renewal. FB3 came 17 days after FB2 ended (grace 7).
        ("FB1", datetime(2026, 1, 15, 9), datetime(2026, 2, 15, 9), False, True, "renewed"),
        ("FB2", datetime(2026, 2, 15, 9), datetime(2026, 3, 15, 9), True, False, "ended"),
        ("FB3", datetime(2026, 4, 1, 9), datetime(2026, 5, 1, 9), False, False, "ended"),
    ]
    # B1 33.50 -> 33 base -> floor(33 x 0.5) = 16; B2 falls between periods; B3 10.99 -> 10 -> 5.
    assert ledger(con, "RENEW", "membership") == [("B1", "bonus", 16), ("B3", "bonus", 5)]
    # The plan's multiplier stacks on the tier's (Member, 1: no tier bonus): 33 + 16 in all.
    assert con.execute(
        "select sum(points) from loyalty.ledger where customer_id = 'RENEW' and source_event_id = 'B1'"
    ).fetchall() == [(49,)]


def test_an_active_membership_and_the_fee_itself_earns_nothing(con):
    assert memberships(con, "ACTIVE") == [
        ("FC", datetime(2026, 6, 20, 8), datetime(2026, 7, 20, 8), False, False, "active")
    ]
    assert ledger(con, "ACTIVE", "membership") == [("C1", "bonus", 10)]  # floor(21 x 0.5)
    # Fees are no purchases: no points, and no qualifying spend for tiers.
    assert con.execute(
        "select count(*) from loyalty.qualifying_events where source_event_id like 'F%'"
    ).fetchall() == [(0,)]
    assert con.execute(
        "select count(*) from loyalty.ledger where source_event_id like 'F%'"
    ).fetchall() == [(0,)]


def test_a_tier_pass_lifts_purchases_to_its_tier_and_is_reversed_with_a_refund(con):
    # The Gold Pass does not renew: no renewal flags; it runs until 1 January 2027.
    assert memberships(con, "TIERPASS") == [
        ("FD", datetime(2026, 1, 1, 10), datetime(2027, 1, 1, 10), False, False, "active")
    ]
    # T1 101 while holding Silver (1.5): tier bonus floor(101 x 0.5) = 50; the pass lifts it to
    # Gold (2): floor(101 x 1) - 50 = 51, so T1 earns 101 + 50 + 51 = 202 = floor(101 x 2).
    # T2 40: 40 - floor(40 x 0.5) = 20, taken back at its refund. T0 was before the pass.
    assert ledger(con, "TIERPASS", "membership") == [
        ("T1", "bonus", 51),
        ("T2", "bonus", 20),
        ("T2", "reverse", -20),
    ]
    assert con.execute(
        "select sum(points) from loyalty.ledger where customer_id = 'TIERPASS' and source_event_id = 'T1'"
    ).fetchall() == [(202,)]
    # The pass grants earning, not the tier: the tier held stays Silver.
    assert con.execute(
        "select tier from loyalty.balances where customer_id = 'TIERPASS'"
    ).fetchall() == [("Silver",)]


def test_an_unknown_plan_is_kept_with_its_reason_and_gives_nothing(con):
    assert memberships(con, "UNKNOWN") == [("FE", None, None, False, False, "unknown_plan")]
    assert ledger(con, "UNKNOWN", "membership") == []
    assert ledger(con, "UNKNOWN", "purchase") == [("E1", "earn", 50)]


def test_membership_entries_are_unique_and_reconcile(con):
    assert con.execute(
        "select count(*), count(distinct entry_id) from loyalty.ledger where rule = 'membership'"
    ).fetchall() == [(7, 7)]  # six bonuses and T2's reversal
    assert con.execute("select sum(points) from loyalty.membership_rewards").fetchall() == [
        (50 + 16 + 5 + 10 + 51 + 20 - 20,)
    ]


def test_without_a_memberships_section_the_tables_exist_and_are_empty(tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM.split("memberships:")[0])
    con = connect(":memory:")
    load_inputs(con)
    con.execute(f"set variable as_of = '{AS_OF.isoformat()}'::date")
    write_program_tables(con, load_program(path))
    for model in ["loyalty/qualifying_events", "loyalty/tier_history", "loyalty/memberships"]:
        run_model(con, model)
    run_model(con, "loyalty/membership_rewards")
    # Every fee names a plan the (empty) program lacks: kept as unknown_plan, no benefit.
    assert con.execute("select distinct status from loyalty.memberships").fetchall() == [
        ("unknown_plan",)
    ]
    assert con.execute("select count(*) from loyalty.membership_rewards").fetchall() == [(0,)]
    con.close()


@pytest.mark.parametrize(
    ("plans", "message"),
    [
        (
            "[{name: P, price: 5, months: 1, renews: true}]",
            "memberships.plans[0] (P) needs exactly one of tier and earn_multiplier",
        ),
        (
            "[{name: P, price: 5, months: 1, tier: Diamond, renews: true}]",
            "memberships.plans[0] (P).tier must be one of the tiers (Member, Silver, Gold), got 'Diamond'",
        ),
        (
            "[{name: P, price: 5, months: 0, earn_multiplier: 2, renews: true}]",
            "memberships.plans[0] (P).months must be a whole number >= 1, got 0",
        ),
        (
            "[{name: P, price: 5, months: 1, earn_multiplier: 0.5, renews: true}]",
            "memberships.plans[0] (P).earn_multiplier must be a number >= 1, got 0.5",
        ),
        (
            "[{name: P, price: 5, months: 1, earn_multiplier: 2, renews: yes please}]",
            "memberships.plans[0] (P).renews must be true or false, got 'yes please'",
        ),
        (
            "[{name: P, price: 5, months: 1, earn_multiplier: 2, renews: true},"
            " {name: P, price: 6, months: 1, earn_multiplier: 2, renews: true}]",
            "memberships.plans[1] (P).name: plan names must be unique: 'P' is also memberships.plans[0]",
        ),
        ("[]", "memberships.plans needs at least one plan"),
    ],
)
def test_a_bad_plan_is_one_line_naming_the_file_and_key(tmp_path, plans, message):
    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM.split("memberships:")[0] + f"memberships:\n  plans: {plans}\n")
    with pytest.raises(ProgramError) as err:
        load_program(path)
    assert str(err.value).startswith(f"{path}: {message}")
    assert "\n" not in str(err.value)
