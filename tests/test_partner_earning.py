"""Partner earning on a small hand-built scenario: a partner file goes through ingestion and
staging as delivered, its sales are matched to customers through identity's e-mails and
phones, and matched sales earn ledger entries at the partner's rate.

Every expected number is worked out in the comments from the rows below and PROGRAM.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from decimal import Decimal

import pytest
from loyalty_models import build_ledger

from assets.ingest.deliveries import ingest_inbox
from assets.loyalty.program import ProgramError, load_program, write_program_tables
from assets.privacy.erasure import create_privacy_tables
from assets.shared.warehouse import MACROS_FILE, connect, run_model
from assets.staging.standardizers import register_udfs

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
  levels: [{name: Member, threshold: 0, earn_multiplier: 1}]
segments:
  lifecycle_days: {new: 30, active: 90, at_risk: 180, lapsed: 365}
  value_bands: [{name: All, up_to_share: 1}]
  engagement_levels: [{name: Any, min_events_90d: 0}]
  close_to_next_tier_share: 0.1
rfm_segments: [{name: All, r: [1, 5], fm: [1, 5]}]
partners:
  - {name: FlyHigh, points_per_currency_unit: 2}
  - {name: FuelCo, points_per_currency_unit: 0.5}
"""
AS_OF = date(2026, 6, 30)

# Identity as the run found it: source, record id, customer, e-mail, phone (standardized,
# as identity.match_input holds them). BOB and BEA share a household phone.
RECORDS = [
    ("web", "W1", "ANN", "ann@example.com", "+447911123456"),
    ("web", "W2", "BOB", "bob@example.com", "+447700900001"),
    ("app", "A3", "BEA", "bea@example.com", "+447700900001"),
    ("store", "S4", "CAT", "cat@example.com", "+447700900777"),
]

# As the partners deliver them: e-mails and phones in their own formats.
PARTNER_FILE = """partner_txn_id,partner,email,phone,occurred_at,amount
P1,FlyHigh,,07911 123456,2026-05-01T10:00:00Z,45.75
P2,FlyHigh,nobody@example.com,,2026-05-02T10:00:00Z,20.00
P3,FuelCo,,+44 7700 900001,2026-05-03T10:00:00Z,60.00
P4,FuelCo, CAT@Example.com ,,2026-05-04T10:00:00Z,33.30
P5,ShopX,ann@example.com,,2026-05-05T10:00:00Z,99.00
P6,FlyHigh,not-an-address,,2026-05-06T10:00:00Z,10.00
P7,FuelCo,ann@example.com,(07700) 900777,2026-05-07T10:00:00Z,80.00
P8,FlyHigh,ann@example.com,,2026-07-15T10:00:00Z,50.00
"""


def build_scenario(tmp_path, program_text: str = PROGRAM):
    inbox = tmp_path / "inbox"
    (inbox / "partner").mkdir(parents=True)
    (inbox / "partner" / "earnings_20260601.csv").write_text(PARTNER_FILE)
    program_path = tmp_path / "program.yaml"
    program_path.write_text(program_text)

    con = connect(":memory:", {"as_of": AS_OF})
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    ingest_inbox(con, inbox)
    run_model(con, "staging/partner_earnings")

    create_privacy_tables(con)
    con.execute(
        "create table core.customers (customer_id varchar, birth_on date, first_registered_at timestamp)"
    )
    con.execute(
        """
        create table core.events (
            event_id varchar, customer_id varchar, channel varchar, source_event_id varchar, source_record_id varchar,
            event_type varchar, status varchar, occurred_at timestamp, occurred_on date, amount decimal(18, 2),
            points bigint, refunded_at timestamp, is_completed_purchase boolean)
        """
    )
    con.execute(
        "create table identity.match_input (unique_id varchar, source varchar, source_record_id varchar, "
        "registered_at timestamp, email_key varchar, phone_e164 varchar)"
    )
    con.execute(
        "create table identity.source_records (source varchar, source_record_id varchar, customer_id varchar)"
    )
    for source, record_id, customer, email, phone in RECORDS:
        con.execute(
            "insert into identity.match_input values (? || ':' || ?, ?, ?, timestamp '2025-01-01', ?, ?)",
            [source, record_id, source, record_id, email, phone],
        )
        con.execute(
            "insert into identity.source_records values (?, ?, ?)", [source, record_id, customer]
        )
    con.execute(
        "insert into core.customers select distinct customer_id, null, timestamp '2025-01-01' "
        "from identity.source_records"
    )

    write_program_tables(con, load_program(program_path))
    build_ledger(con)
    return con


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    con = build_scenario(tmp_path_factory.mktemp("partner"))
    yield con
    con.close()


def test_every_sale_up_to_the_as_of_date_is_matched_or_unmatched_with_its_reason(con):
    rows = con.execute(
        "select partner_txn_id, is_matched, customer_id, matched_by, reason, points "
        "from loyalty.partner_transactions order by partner_txn_id"
    ).fetchall()
    assert rows == [
        # 07911 123456 is ANN's +447911123456 written the British way: floor(45.75 x 2) = 91.
        ("P1", True, "ANN", "phone", None, 91),
        ("P2", False, None, None, "no_match", 0),
        # +44 7700 900001 is the phone BOB and BEA share: two customers.
        ("P3", False, None, None, "ambiguous", 0),
        # ' CAT@Example.com ' standardizes to CAT's e-mail: floor(33.30 x 0.5) = floor(16.65) = 16.
        ("P4", True, "CAT", "email", None, 16),
        # ShopX is no partner of the program, even though the e-mail is ANN's.
        ("P5", False, None, None, "unknown_partner", 0),
        # 'not-an-address' is no e-mail and there is no phone.
        ("P6", False, None, None, "no_contact", 0),
        # The e-mail is ANN's, the phone (07700) 900777 is CAT's: two customers.
        ("P7", False, None, None, "ambiguous", 0),
        # P8 happened after the as-of date: not yet.
    ]


def test_unmatched_sales_keep_the_reason_and_no_contact_details(con):
    columns = [
        name
        for (name,) in con.execute(
            "select column_name from duckdb_columns() where schema_name = 'loyalty' "
            "and table_name = 'partner_unmatched' order by column_index"
        ).fetchall()
    ]
    assert columns == ["partner_txn_id", "partner", "occurred_at", "amount", "reason"]
    assert con.execute(
        "select partner_txn_id, partner, amount, reason from loyalty.partner_unmatched order by 1"
    ).fetchall() == [
        ("P2", "FlyHigh", Decimal("20.00"), "no_match"),
        ("P3", "FuelCo", Decimal("60.00"), "ambiguous"),
        ("P5", "ShopX", Decimal("99.00"), "unknown_partner"),
        ("P6", "FlyHigh", Decimal("10.00"), "no_contact"),
        ("P7", "FuelCo", Decimal("80.00"), "ambiguous"),
    ]


def test_matched_sales_are_ledger_entries_with_a_stable_id(con):
    rows = con.execute(
        "select customer_id, entry_id, entry_type, rule, points, occurred_at, source, source_event_id "
        "from loyalty.ledger order by customer_id"
    ).fetchall()
    entry_id = {
        txn: hashlib.md5(f"partner|partner:{txn}".encode()).hexdigest() for txn in ("P1", "P4")
    }
    assert rows == [
        ("ANN", entry_id["P1"], "earn", "partner", 91, datetime(2026, 5, 1, 10), "partner", "P1"),
        ("CAT", entry_id["P4"], "earn", "partner", 16, datetime(2026, 5, 4, 10), "partner", "P4"),
    ]
    balances = dict(
        con.execute(
            "select customer_id, points_balance from loyalty.balances where points_balance <> 0"
        ).fetchall()
    )
    assert balances == {"ANN": 91, "CAT": 16}


def test_partner_kpis_per_partner(con):
    # marts.kpis reads more than the partner tables: the rest is empty here.
    con.execute(
        "create table marts.segments (customer_id varchar, frequency bigint, rfm_segment varchar, "
        "lifecycle_stage varchar, channel_mix varchar, purchase_channels bigint, historical_value double)"
    )
    run_model(con, "marts/kpis")
    rows = con.execute(
        "select kpi, dimension, round(value, 6), unit from marts.kpis "
        "where kpi like 'partner%' and period = 'as_of' order by kpi, dimension"
    ).fetchall()
    assert rows == [
        # FlyHigh: P1 matched (91 points), P2 and P6 not; FuelCo: P4 matched (16), P3 and P7 not.
        ("partner_matched_share", "FlyHigh", round(1 / 3, 6), "rate"),
        ("partner_matched_share", "FuelCo", round(1 / 3, 6), "rate"),
        ("partner_matched_share", "ShopX", 0.0, "rate"),
        ("partner_points_issued", "FlyHigh", 91.0, "points"),
        ("partner_points_issued", "FuelCo", 16.0, "points"),
        ("partner_points_issued", "ShopX", 0.0, "points"),
        ("partner_transactions", "FlyHigh", 3.0, "count"),
        ("partner_transactions", "FuelCo", 3.0, "count"),
        ("partner_transactions", "ShopX", 1.0, "count"),
    ]


def test_without_a_partners_section_every_sale_is_an_unknown_partners(tmp_path):
    without = PROGRAM.split("partners:")[0]
    con = build_scenario(tmp_path, without)
    assert con.execute(
        "select reason, count(*) from loyalty.partner_transactions group by 1"
    ).fetchall() == [("unknown_partner", 7)]
    assert con.execute("select count(*) from loyalty.ledger").fetchall() == [(0,)]
    con.close()


@pytest.mark.parametrize(
    "partners, message",
    [
        (
            "partners: [{name: A, points_per_currency_unit: 1}, {name: A, points_per_currency_unit: 2}]",
            "partners[1] (A).name: partner names must be unique: 'A' is also partners[0]",
        ),
        (
            "partners: [{name: A, points_per_currency_unit: -1}]",
            "partners[0] (A).points_per_currency_unit must be a number >= 0, got -1",
        ),
        ("partners: [{points_per_currency_unit: 1}]", "partners[0].name"),
    ],
)
def test_bad_partner_sections_are_refused_naming_the_key(tmp_path, partners, message):
    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM.split("partners:")[0] + partners + "\n")
    with pytest.raises(ProgramError) as err:
        load_program(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)
