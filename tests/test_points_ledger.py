"""The loyalty engine on small hand-built scenarios, one customer per rule.

Every expected number is worked out in the comments from the events below and the
program in PROGRAM (not the bundled one, so the figures do not move when marketing
changes it).
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime

import pytest
from loyalty_models import build_ledger

from assets.loyalty.program import load_program, write_program_tables
from assets.loyalty.settling import (
    INVARIANTS,
    SCREENS,
    broken_invariants,
    count_violations,
)
from assets.privacy.erasure import create_privacy_tables
from assets.shared.warehouse import connect

PROGRAM = """
currency: GBP
earning: {points_per_currency_unit: {web: 1, app: 2, store: 1}}
bonuses:
  enrolment_points: 100
  birthday_multiplier: 2
  engagement: {points_per_event: {share: 10, review: 25, check_in: 5}, daily_cap: 30}
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
"""
AS_OF = date(2026, 6, 30)

# customer -> birth date (September, a month without events, unless a scenario needs it)
CUSTOMERS = {
    "FIFO": date(1980, 9, 1),
    "REJECT": date(1980, 9, 1),
    "REFUND": date(1990, 2, 14),
    "GRACE": date(1980, 9, 1),
    "ENGAGE": date(1980, 9, 1),
    "ENROL": date(1980, 9, 1),
    "RETURN": date(1980, 9, 1),
    "SOON": date(1980, 9, 1),
}

# source_event_id, customer, channel, event_type, status, occurred_at, amount, points, refund known on
EVENTS = [
    ("F1", "FIFO", "web", "purchase", "completed", "2025-01-10 12:00", 300, None, None),
    ("F2", "FIFO", "web", "purchase", "completed", "2025-03-01 12:00", 200, None, None),
    ("F3", "FIFO", "app", "redeem", "completed", "2025-06-01 12:00", None, 350, None),
    ("R1", "REJECT", "store", "purchase", "completed", "2026-01-05 12:00", 100, None, None),
    ("R2", "REJECT", "store", "redeem", "completed", "2026-02-01 12:00", None, 150, None),
    ("R3", "REJECT", "app", "redeem", "completed", "2026-02-02 12:00", None, 80, None),
    ("R4", "REJECT", "app", "redeem", "completed", "2026-02-03 12:00", None, 30, None),
    ("B1", "REFUND", "web", "purchase", "completed", "2026-01-15 12:00", 1000, None, None),
    ("B2", "REFUND", "web", "purchase", "refunded", "2026-02-10 12:00", 200, None, "2026-02-20"),
    ("G1", "GRACE", "store", "purchase", "completed", "2025-05-01 12:00", 600, None, None),
    ("E1", "ENGAGE", "app", "share", "completed", "2026-06-01 09:00", None, None, None),
    ("E2", "ENGAGE", "app", "review", "completed", "2026-06-01 10:00", None, None, None),
    ("E3", "ENGAGE", "app", "check_in", "completed", "2026-06-01 11:00", None, None, None),
    ("E4", "ENGAGE", "app", "check_in", "completed", "2026-06-02 09:00", None, None, None),
    ("K1", "ENROL", "callcenter", "contact", "completed", "2026-06-10 12:00", None, 50, None),
    ("T1", "RETURN", "store", "purchase", "completed", "2026-03-01 12:00", 50, None, None),
    ("T2", "RETURN", "store", "return", "completed", "2026-03-05 12:00", 80, None, None),
    ("T3", "RETURN", "store", "return", "completed", "2026-03-06 12:00", 10, None, None),
    ("S1", "SOON", "app", "purchase", "completed", "2025-07-15 12:00", 20, None, None),
    ("S2", "SOON", "web", "purchase", "completed", "2025-12-01 12:00", 70, None, None),
    ("S3", "SOON", "app", "redeem", "completed", "2026-01-10 12:00", None, 30, None),
]

# source, source_record_id, customer, registered_at: ENROL has three records of one person.
RECORDS = [
    ("web", "W-ENROL", "ENROL", "2024-03-01 10:00"),
    ("store", "S-ENROL", "ENROL", "2023-07-01 10:00"),
    ("callcenter", "K-ENROL", "ENROL", "2023-01-01 10:00"),
]


def build(con, as_of: date = AS_OF, program_path=None) -> int:
    """Run the loyalty models in the order the asset graph does; returns the settling rounds."""
    con.execute(f"set variable as_of = '{as_of.isoformat()}'::date")
    write_program_tables(con, load_program(program_path))
    return build_ledger(con)


def load_inputs(con, records=RECORDS, customer_of=lambda customer: customer) -> None:
    """core.customers, core.events and the identity tables for the scenarios.

    `customer_of` maps a scenario's customer to the customer_id identity gives it.
    """
    create_privacy_tables(con)  # nobody erased: privacy.erased_records empty
    con.execute(
        "create or replace table core.customers (customer_id varchar, birth_on date, first_registered_at timestamp)"
    )
    # A merged customer keeps the birth date of the scenario whose id survives.
    people = {
        customer: birth_on
        for customer, birth_on in CUSTOMERS.items()
        if customer_of(customer) == customer
    }
    con.executemany(
        "insert into core.customers values (?, ?, timestamp '2023-01-01')", list(people.items())
    )
    con.execute(
        """
        create or replace table core.events (
            event_id varchar, customer_id varchar, channel varchar, source_event_id varchar, source_record_id varchar,
            event_type varchar, status varchar, occurred_at timestamp, occurred_on date, amount decimal(18, 2),
            points bigint, refunded_at timestamp, is_completed_purchase boolean)
        """
    )
    for (
        event_id,
        customer,
        channel,
        event_type,
        status,
        occurred_at,
        amount,
        points,
        refunded_on,
    ) in EVENTS:
        con.execute(
            "insert into core.events values (? || ':' || ?, ?, ?, ?, ?, ?, ?, ?::timestamp, ?::timestamp::date, ?, ?, ?::timestamp, ?)",
            [
                channel,
                event_id,
                customer_of(customer),
                channel,
                event_id,
                f"{customer}-record",
                event_type,
                status,
                occurred_at,
                occurred_at,
                amount,
                points,
                refunded_on,
                event_type == "purchase" and status == "completed",
            ],
        )
    con.execute(
        "create or replace table identity.match_input (unique_id varchar, source varchar, source_record_id varchar, registered_at timestamp)"
    )
    con.execute(
        "create or replace table identity.source_records (source varchar, source_record_id varchar, customer_id varchar)"
    )
    for source, record_id, customer, registered_at in records:
        con.execute(
            "insert into identity.match_input values (? || ':' || ?, ?, ?, ?::timestamp)",
            [source, record_id, source, record_id, registered_at],
        )
        con.execute(
            "insert into identity.source_records values (?, ?, ?)",
            [source, record_id, customer_of(customer)],
        )


@pytest.fixture(scope="module")
def program_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("program") / "program.yaml"
    path.write_text(PROGRAM)
    return path


@pytest.fixture(scope="module")
def con(program_path):
    con = connect(":memory:")
    load_inputs(con)
    build(con, program_path=program_path)
    yield con
    con.close()


def ledger_of(con, customer: str) -> list[tuple]:
    return con.execute(
        "select rule, source_event_id, points, occurred_at from loyalty.ledger where customer_id = ? "
        "order by occurred_at, rule",
        [customer],
    ).fetchall()


def balance_of(con, customer: str) -> dict:
    cursor = con.execute("select * from loyalty.balances where customer_id = ?", [customer])
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchall()[0]))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_fifo_expiry_after_a_partial_redemption(con):
    # Lots: 300 (2025-01-10) and 200 (2025-03-01). The 350-point redemption spends the
    # first lot and 50 of the second. The first lot expires on 2026-01-10 with nothing left;
    # the second on 2026-03-01 with 150 left, which expire. F2 lifted FIFO to Silver but
    # earned at Member, the tier held before it.
    assert ledger_of(con, "FIFO") == [
        ("purchase", "F1", 300, at("2025-01-10 12:00")),
        ("purchase", "F2", 200, at("2025-03-01 12:00")),
        ("redemption", "F3", -350, at("2025-06-01 12:00")),
        ("expiry", "F2", -150, at("2026-03-01 12:00")),
    ]
    assert balance_of(con, "FIFO")["points_balance"] == 0
    assert balance_of(con, "FIFO")["points_expired"] == 150


def test_a_downgrade_after_the_grace_period(con):
    # Spend 500 from 2025-03-01 (Silver); F1 leaves the window on 2026-01-10 (spend 200,
    # Member), and after three months' grace the downgrade takes effect on 2026-04-10.
    history = con.execute(
        "select tier, valid_from, valid_to, change from loyalty.tier_history where customer_id = 'FIFO' order by valid_from"
    ).fetchall()
    assert history == [
        ("Silver", at("2025-03-01 12:00"), at("2026-04-10 12:00"), "upgrade"),
        ("Member", at("2026-04-10 12:00"), None, "downgrade"),
    ]
    fifo = balance_of(con, "FIFO")
    assert (fifo["tier"], fifo["tier_since"], float(fifo["qualifying_spend"])) == (
        "Member",
        date(2026, 4, 10),
        0.0,
    )


def test_a_downgrade_inside_the_grace_period_has_not_happened(con):
    # 600 on 2025-05-01: Silver. The purchase leaves the window on 2026-05-01; the
    # downgrade would take effect on 2026-08-01, after the as-of date.
    grace = balance_of(con, "GRACE")
    assert (grace["tier"], grace["tier_since"], float(grace["qualifying_spend"])) == (
        "Silver",
        date(2025, 5, 1),
        0.0,
    )
    assert (grace["next_tier"], float(grace["spend_to_next_tier"])) == ("Gold", 1000.0)
    # Its 600 points expired unspent on 2026-05-01.
    assert ledger_of(con, "GRACE") == [
        ("purchase", "G1", 600, at("2025-05-01 12:00")),
        ("expiry", "G1", -600, at("2026-05-01 12:00")),
    ]


def test_a_redemption_above_the_balance_is_rejected_with_the_reason(con):
    # 100 points; 150 asked: rejected. 80 asked: applied (20 left). 30 asked: rejected.
    assert ledger_of(con, "REJECT") == [
        ("purchase", "R1", 100, at("2026-01-05 12:00")),
        ("redemption", "R3", -80, at("2026-02-02 12:00")),
    ]
    debits = con.execute(
        "select source_event_id, status, requested_points, applied_points, available_before, reason "
        "from loyalty.debits where customer_id = 'REJECT' order by occurred_at"
    ).fetchall()
    assert debits == [
        ("R2", "rejected", 150, 0, 100, "asks 150 points, 100 available"),
        ("R3", "applied", 80, 80, 100, None),
        ("R4", "rejected", 30, 0, 20, "asks 30 points, 20 available"),
    ]
    reject = balance_of(con, "REJECT")
    assert (
        reject["points_balance"],
        reject["rejected_redemptions"],
        reject["points_redeemed"],
    ) == (20, 2, 80)


def test_the_refund_of_a_birthday_order_at_gold_takes_back_every_point_it_earned(con):
    # B1 (1000, at Member) lifts REFUND to Gold. B2 in the birthday month (February) at
    # Gold: base 200, tier bonus 200 x (2 - 1) = 200, birthday bonus 200 x (2 - 1) = 200.
    # The refund, known from the delivery of 2026-02-20, takes back all 600.
    assert ledger_of(con, "REFUND") == [
        ("purchase", "B1", 1000, at("2026-01-15 12:00")),
        ("birthday", "B2", 200, at("2026-02-10 12:00")),
        ("purchase", "B2", 200, at("2026-02-10 12:00")),
        ("tier_multiplier", "B2", 200, at("2026-02-10 12:00")),
        ("refund", "B2", -600, at("2026-02-20 00:00")),
    ]
    refund = balance_of(con, "REFUND")
    assert (
        refund["points_balance"],
        refund["tier"],
        refund["tier_since"],
        refund["next_tier"],
    ) == (1000, "Gold", date(2026, 1, 15), None)
    # The refunded order no longer counts towards the tier.
    assert float(refund["qualifying_spend"]) == 1000.0


def test_engagement_points_are_capped_per_day(con):
    # 2026-06-01: share 10, review 25 -> 20 (cap 30), check-in 5 -> 0. 2026-06-02: check-in 5.
    assert ledger_of(con, "ENGAGE") == [
        ("engagement", "E1", 10, at("2026-06-01 09:00")),
        ("engagement", "E2", 20, at("2026-06-01 10:00")),
        ("engagement", "E4", 5, at("2026-06-02 09:00")),
    ]


def test_one_enrolment_bonus_per_person_and_goodwill_as_an_adjustment(con):
    # Three records; the call-center contact is no enrolment, so the bonus comes once,
    # from the store card registered on 2023-07-01, and expires unspent a year later.
    assert ledger_of(con, "ENROL") == [
        ("enrolment", "S-ENROL", 100, at("2023-07-01 10:00")),
        ("expiry", "S-ENROL", -100, at("2024-07-01 10:00")),
        ("goodwill", "K1", 50, at("2026-06-10 12:00")),
    ]
    assert con.execute(
        "select entry_type from loyalty.ledger where rule = 'goodwill'"
    ).fetchall() == [("adjust",)]


def test_a_store_return_never_takes_back_more_than_was_earned(con):
    # 50 earned; a return of 80 asks for 80 and takes 50; a later return of 10 takes nothing.
    assert ledger_of(con, "RETURN") == [
        ("purchase", "T1", 50, at("2026-03-01 12:00")),
        ("return", "T2", -50, at("2026-03-05 12:00")),
    ]


def test_points_expiring_in_the_next_30_days(con):
    # S1 earns 20 x 2 (app rate) = 40, expiring 2026-07-15; S2 earns 70. The redemption of
    # 30 spends S1's lot first, so 10 of it expire within 30 days of 2026-06-30.
    soon = balance_of(con, "SOON")
    assert (soon["points_balance"], soon["points_expiring_next_30_days"]) == (80, 10)


def test_invariants(con):
    assert broken_invariants(con) == dict.fromkeys(INVARIANTS, 0)


def test_entry_key_is_the_md5_of_rule_and_event_and_sorts_as_the_ledgers_entry_id(con):
    # The stage keys entries by the md5 as a number; the ledger publishes the md5 text.
    ((key_as_text, entry_id),) = con.execute(
        "select printf('%032x', movements.entry_key), ledger.entry_id "
        "from loyalty.point_movements as movements join loyalty.ledger using (customer_id, rule, source_event_id) "
        "where movements.customer_id = 'FIFO' and movements.source_event_id = 'F1'"
    ).fetchall()
    assert key_as_text == entry_id == hashlib.md5(b"purchase|web:F1").hexdigest()
    # Tie-breaks in spending order are unchanged: the numbers sort as the texts do.
    by_key = con.execute(
        "select printf('%032x', entry_key) from loyalty.point_movements order by entry_key"
    ).fetchall()
    assert by_key == sorted(by_key) and len(by_key) > 20
    expired_lot = con.execute(
        "select printf('%032x', entry_key) from loyalty.lot_expiry "
        "where customer_id = 'FIFO' and source_event_id = 'F2'"
    ).fetchall()
    assert expired_lot == [(hashlib.md5(b"purchase|web:F2").hexdigest(),)]


def insert_entries(con, entries: list[tuple]) -> None:
    con.executemany(
        "insert into loyalty.ledger by name select ? as entry_id, 'FIFO' as customer_id, ? as entry_type, "
        "'redemption' as rule, ? as points, ?::timestamp as occurred_at",
        entries,
    )


@pytest.mark.parametrize(
    "entries, invariant, expected",
    [
        # FIFO: +300, then -400 (-100), +200 (100), -350 (-250), expiry -150 (-400).
        ([("x1", "redeem", -400, "2025-02-01 12:00")], "negative_running_balances", 3),
        # Two debits at F2's moment come after its credit: 300, 500, 250, 240, then F3
        # takes it to -110 and the expiry to -260.
        (
            [("x1", "redeem", -250, "2025-03-01 12:00"), ("x2", "redeem", -10, "2025-03-01 12:00")],
            "negative_running_balances",
            2,
        ),
        # A second entry under F1's id.
        (
            [(hashlib.md5(b"purchase|web:F1").hexdigest(), "earn", 1, "2025-01-10 12:00")],
            "duplicate_entry_ids",
            1,
        ),
    ],
)
def test_a_broken_ledger_is_counted_exactly_past_the_screen(con, entries, invariant, expected):
    con.execute("begin")
    try:
        insert_entries(con, entries)
        assert con.execute(SCREENS[invariant]).fetchall()[0][0] > 0
        assert con.execute(INVARIANTS[invariant]).fetchall()[0][0] == expected
        assert count_violations(con, invariant) == expected
    finally:
        con.execute("rollback")
    assert count_violations(con, invariant) == 0


def test_a_past_as_of_date_reproduces_that_days_balances(program_path):
    con = connect(":memory:")
    load_inputs(con)
    # On 2026-02-15 the refund of B2 (known 2026-02-20) had not happened: 1000 + 600.
    build(con, as_of=date(2026, 2, 15), program_path=program_path)
    assert balance_of(con, "REFUND")["points_balance"] == 1600
    # REJECT's later redemptions had not happened either; R2 was already refused.
    assert balance_of(con, "REJECT")["points_balance"] == 20
    assert con.execute("select max(occurred_at) from loyalty.ledger").fetchall()[0][0] < datetime(
        2026, 2, 16
    )


def test_rebuilding_gives_the_same_ledger(con, program_path):
    before = con.execute("select * from loyalty.ledger order by entry_id").fetchall()
    build(con, program_path=program_path)
    assert con.execute("select * from loyalty.ledger order by entry_id").fetchall() == before


def test_a_merge_combines_ledgers_without_doubling(program_path):
    # Identity learns that REFUND and REJECT are one person (kept id: REFUND), and that
    # person also holds ENROL's records. Every event's entries move over unchanged...
    separate = connect(":memory:")
    load_inputs(separate)
    build(separate, program_path=program_path)
    merged_into = {"REJECT": "REFUND", "ENROL": "REFUND"}
    merged = connect(":memory:")
    load_inputs(merged, customer_of=lambda customer: merged_into.get(customer, customer))
    build(merged, program_path=program_path)
    event_entries = "select entry_id, points from loyalty.ledger where rule not in ('enrolment', 'expiry') order by 1"
    # ...except where the merged balance decides differently: REJECT's redemptions now
    # draw on REFUND's points too, so R2 and R4 are applied instead of rejected.
    before = dict(separate.execute(event_entries).fetchall())
    after = dict(merged.execute(event_entries).fetchall())
    r2, r4 = (
        separate.execute(
            "select entry_id from loyalty.debits where source_event_id = ?", [e]
        ).fetchall()[0][0]
        for e in ("R2", "R4")
    )
    assert set(after) == set(before) | {r2, r4}
    assert all(after[entry] == points for entry, points in before.items())
    assert (after[r2], after[r4]) == (-150, -30)
    # One person, one enrolment bonus; nothing of the others' customers changed.
    assert merged.execute(
        "select count(*) from loyalty.ledger where rule = 'enrolment'"
    ).fetchall() == [(1,)]
    assert balance_of(merged, "REFUND")["points_balance"] == 1000 + 20 + 50 - 150 - 30
    assert broken_invariants(merged) == dict.fromkeys(INVARIANTS, 0)
    totals = "select customer_id, points_balance from loyalty.balances where customer_id not in ('REFUND', 'REJECT', 'ENROL') order by 1"
    assert merged.execute(totals).fetchall() == separate.execute(totals).fetchall()


def test_tiers_can_qualify_on_points(tmp_path):
    # SOON spent 20 + 70 = 90 but earned 40 + 70 = 110 base points (the app pays 2 a pound).
    # Qualifying on points with Silver at 100, S2 (2025-12-01) lifts SOON to Silver.
    path = tmp_path / "program.yaml"
    path.write_text(
        PROGRAM.replace("qualify_on: spend", "qualify_on: points").replace(
            "threshold: 500", "threshold: 100"
        )
    )
    con = connect(":memory:")
    load_inputs(con)
    build(con, program_path=path)
    soon = balance_of(con, "SOON")
    assert (soon["tier"], soon["tier_since"], soon["qualifying_points"]) == (
        "Silver",
        date(2025, 12, 1),
        110,
    )
    assert (soon["next_tier"], soon["points_to_next_tier"], soon["spend_to_next_tier"]) == (
        "Gold",
        890,
        None,
    )
