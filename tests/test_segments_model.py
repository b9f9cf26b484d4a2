"""Segments, custom segments and KPIs on small hand-built inputs.

Each expected value below is computed by hand from the rows in the fixture, with the
bundled program file's segmentation settings. The points ledger and balances have their
own scenarios in test_points_ledger.py.
"""

from datetime import date

import pytest

from assets.loyalty.program import (
    Condition,
    CustomSegment,
    ProgramError,
    load_program,
    write_program_tables,
)
from assets.marts.custom_segments import segment_query, write_custom_segment_members
from assets.shared.warehouse import connect, run_model

AS_OF = date(2026, 6, 30)

# customer, channel, event id, type, status, occurred_at, amount
EVENTS = [
    ("C1", "web", "O1", "purchase", "completed", "2026-06-01 10:00:00", 100.40),
    ("C1", "store", "T1", "purchase", "completed", "2026-05-01 10:00:00", 200.99),
    ("C1", "web", "O2", "purchase", "refunded", "2026-05-02 10:00:00", 50.00),
    ("C1", "web", "O3", "purchase", "cancelled", "2026-05-03 10:00:00", 70.00),
    ("C1", "app", "E4", "review", "completed", "2026-06-15 10:00:00", None),
    (
        "C2",
        "app",
        "E1",
        "purchase",
        "completed",
        "2025-01-15 10:00:00",
        900.00,
    ),  # outside 12 months
    ("C2", "app", "E2", "purchase", "completed", "2026-01-15 10:00:00", 300.00),
    ("C2", "app", "E3", "share", "completed", "2026-01-16 10:00:00", None),  # more than 90 days ago
    ("C2", "callcenter", "K1", "contact", "completed", "2026-06-10 10:00:00", None),
    ("C3", "store", "T2", "purchase", "completed", "2026-07-01 10:00:00", 5000.00),  # after as-of
    ("C5", "store", "T4", "purchase", "completed", "2026-06-20 10:00:00", 50.00),
    (None, "store", "T3", "purchase", "completed", "2026-06-01 10:00:00", 10.00),  # anonymous
]
# customer, birth date, predicted 12-month value, points expiring in 30 days, tier, next tier, spend to it
CUSTOMERS = [
    ("C1", "1990-06-02", 500.0, 10, "Silver", "Gold", 60.0),
    ("C2", "1985-01-01", 100.0, 0, "Silver", "Gold", 450.0),
    ("C3", "1970-03-03", None, 0, "Member", "Silver", 250.0),
    ("C4", None, None, 0, "Member", "Silver", 250.0),
    ("C5", "2000-12-12", 50.0, 0, "Member", "Silver", 200.0),
]


@pytest.fixture(scope="module")
def con():
    con = connect(":memory:", {"as_of": AS_OF})
    write_program_tables(con, load_program())
    con.execute("create table core.customers (customer_id varchar, birth_on date)")
    con.execute(
        "create table loyalty.balances (customer_id varchar, points_expiring_next_30_days bigint, tier varchar, "
        "next_tier varchar, spend_to_next_tier decimal(18, 2), points_to_next_tier bigint, points_balance bigint)"
    )
    con.execute(
        "create table marts.customer_value (customer_id varchar, predicted_value_12m double, probability_alive double)"
    )
    for customer, birth_on, value, expiring, tier, next_tier, needed in CUSTOMERS:
        con.execute("insert into core.customers values (?, ?)", [customer, birth_on])
        con.execute(
            "insert into loyalty.balances values (?, ?, ?, ?, ?, null, 0)",
            [customer, expiring, tier, next_tier, needed],
        )
        if value is not None:
            con.execute("insert into marts.customer_value values (?, ?, 0.9)", [customer, value])
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
    run_model(con, "marts/purchase_summary")
    run_model(con, "marts/segments")
    write_custom_segment_members(con, load_program().segmentation.custom)
    run_model(con, "marts/segment_memberships")
    yield con
    con.close()


def column(con, name: str) -> dict:
    return dict(
        con.execute(f"select customer_id, {name} from marts.segments order by 1").fetchall()
    )


def test_rfm_scores_and_segments(con):
    rows = con.execute(
        "select customer_id, recency_days, frequency, historical_value::double, r_score, f_score, m_score, fm_score, rfm_segment "
        "from marts.segments order by 1"
    ).fetchall()
    # Three buyers; percent_rank gives 0, 0.5 and 1, so scores 1, 3 and 5; ties share one.
    # Recency (fewer days is better): C2 166 -> 1, C1 29 -> 3, C5 10 -> 5.
    # Frequency: C5 1 -> 1; C1 and C2 2 each -> 3. Monetary: C5 50 -> 1, C1 301.39 -> 3, C2 1200 -> 5.
    # fm = round((f + m) / 2): C1 3 -> Potential Loyalists (r 3-5, fm 2-3);
    # C2 round(4) = 4 with r 1 -> At Risk (r 1-2, fm 3-4); C5 r 5, fm 1 -> New.
    assert rows == [
        ("C1", 29, 2, 301.39, 3, 3, 3, 3, "Potential Loyalists"),
        ("C2", 166, 2, 1200.0, 1, 3, 5, 4, "At Risk"),
        ("C3", None, 0, 0.0, None, None, None, None, "Prospect"),
        ("C4", None, 0, 0.0, None, None, None, None, "Prospect"),
        ("C5", 10, 1, 50.0, 5, 1, 1, 1, "New"),
    ]


def test_lifecycle_channel_mix_and_value_bands(con):
    # Lifecycle windows 30 / 90 / 180 / 365 days: C5's first purchase was 10 days ago (new);
    # C1 last bought 29 days ago (active); C2 166 days ago (at risk).
    assert column(con, "lifecycle_stage") == {
        "C1": "active",
        "C2": "at risk",
        "C3": "prospect",
        "C4": "prospect",
        "C5": "new",
    }
    assert column(con, "channel_mix") == {
        "C1": "omnichannel",
        "C2": "app-only",
        "C3": "no purchase",
        "C4": "no purchase",
        "C5": "store-only",
    }
    # By predicted value, highest first: C1 at 1/3 of buyers (Medium: up to 0.6), C2 at 2/3
    # and C5 at 3/3 (Low: up to 1.0); nobody within the Top 10% or High 30% of three.
    assert column(con, "value_band") == {
        "C1": "Medium",
        "C2": "Low",
        "C3": None,
        "C4": None,
        "C5": "Low",
    }
    assert float(column(con, "historical_value")["C2"]) == 1200.0


def test_engagement_and_occasions(con):
    # C1's review on 2026-06-15 is within 90 days (Low: 1-2 events); C2's share is not.
    assert column(con, "app_engagements_90d") == {"C1": 1, "C2": 0, "C3": 0, "C4": 0, "C5": 0}
    assert column(con, "engagement_level") == {
        "C1": "Low",
        "C2": "None",
        "C3": "None",
        "C4": "None",
        "C5": "None",
    }
    assert column(con, "has_recent_callcenter_contact") == {
        "C1": False,
        "C2": True,
        "C3": False,
        "C4": False,
        "C5": False,
    }
    assert column(con, "is_birthday_this_month") == {
        "C1": True,
        "C2": False,
        "C3": False,
        "C4": False,
        "C5": False,
    }
    assert column(con, "has_points_expiring_30d") == {
        "C1": True,
        "C2": False,
        "C3": False,
        "C4": False,
        "C5": False,
    }
    # Close to Gold (threshold 750, share 0.1): C1 needs 60 <= 75; C2 needs 450.
    assert column(con, "is_close_to_next_tier") == {
        "C1": True,
        "C2": False,
        "C3": False,
        "C4": False,
        "C5": False,
    }


def test_memberships_long_table(con):
    memberships = con.execute(
        "select segmentation, segment from marts.segment_memberships where customer_id = 'C1' order by all"
    ).fetchall()
    assert memberships == [
        ("channel_mix", "omnichannel"),
        ("engagement", "Low"),
        ("lifecycle", "active"),
        ("occasion", "birthday this month"),
        ("occasion", "close to the next tier"),
        ("occasion", "points expiring in 30 days"),
        ("rfm", "Potential Loyalists"),
        ("value", "Medium"),
    ]


def test_custom_segments_from_conditions(con):
    segments = [
        CustomSegment(
            "Silver buyers",
            "email",
            (Condition("tier", "=", "Silver"), Condition("frequency", ">=", 2)),
        ),
        CustomSegment(
            "Some stages", "push", (Condition("lifecycle_stage", "in", ("new", "at risk")),)
        ),
        # A value is a bound parameter: SQL in it is just text that matches nobody.
        CustomSegment("Hostile", "email", (Condition("tier", "=", "x' or '1'='1"),)),
    ]
    assert write_custom_segment_members(con, segments) == {
        "Silver buyers": 2,
        "Some stages": 2,
        "Hostile": 0,
    }
    assert con.execute(
        "select segment, customer_id from marts.custom_segment_members order by all"
    ).fetchall() == [
        ("Silver buyers", "C1"),
        ("Silver buyers", "C2"),
        ("Some stages", "C2"),
        ("Some stages", "C5"),
    ]
    assert con.execute("select count(*) from marts.segments").fetchall() == [(5,)]


def test_custom_segment_definitions_cannot_name_personal_or_unknown_columns(tmp_path):
    with pytest.raises(ValueError, match="is not allowed"):
        segment_query(CustomSegment("x", "email", (Condition("email", "=", "a@b.c"),)))
    bundled = (load_program.__defaults__[0]).read_text()
    for column, message in (
        ("email", "'email' is not a non-personal column"),
        ("tier; drop table core.customers", "is not a non-personal column"),
    ):
        path = tmp_path / "program.yaml"
        path.write_text(
            bundled.replace(
                '{column: tier, op: "=", value: Gold}',
                f'{{column: "{column}", op: "=", value: Gold}}',
            )
        )
        with pytest.raises(ProgramError, match=message):
            load_program(path)


# source, record, customer, registered_at
RECORDS = [
    ("web", "W1", "C1", "2026-01-10"),
    ("store", "S1", "C1", "2025-03-01"),
    ("app", "A1", "C1", "2026-02-01"),
    ("app", "A2", "C2", "2025-01-01"),
    ("callcenter", "K2", "C2", "2026-06-10"),
    ("store", "S3", "C3", "2026-06-01"),
    ("web", "W4", "C4", "2026-06-15"),
    ("store", "S5", "C5", "2026-06-20"),
]
# Paid memberships (loyalty.memberships) as of 2026-06-30, bundled plans (Plus Monthly renews,
# 7 grace days): customer, plan, starts_on, ends_at, is_renewed, status
MEMBERSHIPS = [
    ("C1", "Plus Monthly", "2026-05-15", "2026-06-15 09:00", True, "renewed"),
    ("C1", "Plus Monthly", "2026-06-15", "2026-07-15 09:00", False, "active"),
    ("C2", "Plus Monthly", "2026-01-01", "2026-02-01 09:00", False, "ended"),
    ("C5", "Plus Monthly", "2026-06-20", "2026-06-21 12:00", False, "refunded"),
    ("C4", "Diamond", None, None, False, "unknown_plan"),
]
# customer, entry type, points, occurred_at, expires_at (credits only). C2's lot lives
# six weeks, so it is past its expiry by March. E1 was erased: an erasure entry closed
# their balance, so their lot (past its expiry in April) is left out of the breakage estimate.
LEDGER = [
    ("C1", "earn", 100, "2026-06-01", "2027-06-01"),
    ("C1", "earn", 200, "2026-05-01", "2027-05-01"),
    ("C2", "earn", 300, "2026-01-15", "2026-03-01"),
    ("C2", "redeem", -50, "2026-06-05", None),
    ("C2", "expire", -20, "2026-03-01", None),
    ("E1", "earn", 40, "2026-02-01", "2026-04-01"),
    ("E1", "erasure", -40, "2026-03-10", None),
]


@pytest.fixture(scope="module")
def kpis(con):
    con.execute(
        "update loyalty.balances set points_balance = case customer_id when 'C1' then 300 when 'C2' then 230 else 0 end"
    )
    con.execute(
        "create table identity.source_records (source varchar, source_record_id varchar, customer_id varchar)"
    )
    con.execute(
        "create table identity.match_input (source varchar, source_record_id varchar, registered_at timestamp)"
    )
    for source, record, customer, registered_at in RECORDS:
        con.execute(
            "insert into identity.source_records values (?, ?, ?)", [source, record, customer]
        )
        con.execute(
            "insert into identity.match_input values (?, ?, ?)", [source, record, registered_at]
        )
    con.execute(
        "create table loyalty.ledger (customer_id varchar, entry_type varchar, points bigint, occurred_at timestamp, "
        "expires_at timestamp)"
    )
    con.executemany("insert into loyalty.ledger values (?, ?, ?, ?, ?)", LEDGER)
    con.execute(
        "create table loyalty.tier_history (customer_id varchar, tier varchar, valid_from timestamp, change varchar)"
    )
    con.execute(
        "insert into loyalty.tier_history values ('C1', 'Silver', '2026-05-01', 'upgrade'), ('C2', 'Silver', '2025-01-15', 'upgrade')"
    )
    con.execute(
        "create table loyalty.memberships (customer_id varchar, plan varchar, starts_on date, "
        "ends_at timestamp, is_renewed boolean, status varchar)"
    )
    con.executemany("insert into loyalty.memberships values (?, ?, ?, ?, ?, ?)", MEMBERSHIPS)
    # No partner sales here (tests/test_partner_earning.py has the partner KPIs).
    con.execute(
        "create table loyalty.partner_transactions (partner varchar, is_matched boolean, points bigint)"
    )
    run_model(con, "marts/kpis")
    return {
        (kpi, period, dimension): round(value, 6)
        for kpi, period, dimension, value in con.execute(
            "select kpi, period, dimension, value from marts.kpis"
        ).fetchall()
    }


def test_snapshot_kpis_by_hand(kpis):
    snapshot = {
        (kpi, dimension): value
        for (kpi, period, dimension), value in kpis.items()
        if period == "as_of"
    }
    assert snapshot == {
        ("members", "all"): 5,
        ("members", "web"): 2,
        ("members", "app"): 2,
        ("members", "store"): 3,
        ("members", "callcenter"): 1,
        ("customer_records", "web"): 2,
        ("customer_records", "app"): 2,
        ("customer_records", "store"): 3,
        ("customer_records", "callcenter"): 1,
        ("records_per_customer", "all"): 1.6,  # 8 records, 5 customers
        # A record counts as matched when its customer also has a record in another source (C1, C2).
        ("identity_match_rate", "web"): 0.5,
        ("identity_match_rate", "app"): 1.0,
        ("identity_match_rate", "store"): round(1 / 3, 6),
        ("identity_match_rate", "callcenter"): 1.0,
        ("active_members_30d", "all"): 2,
        ("active_members_90d", "all"): 2,  # C1 and C5
        ("retention_rate_90d", "all"): 0.0,  # C2 bought in January and not since
        # Paying = held a membership (not refunded, known plan) in the 12 months: C1 and C2.
        # C2 is the only buyer of 91-180 days ago, and a paying one.
        ("retention_rate_90d", "paying"): 0.0,
        ("repeat_purchase_rate", "all"): round(2 / 3, 6),  # C1 and C2 of three buyers
        # Purchases since 2025-06-30: 100.40 + 200.99 + 300 + 50 = 651.39 in 4 orders by 3 customers.
        ("average_order_value_12m", "all"): 162.8475,
        ("revenue_per_member_12m", "all"): 130.278,
        ("revenue_per_member_12m", "paying"): 300.695,  # (100.40 + 200.99 + 300) / C1, C2
        ("revenue_per_member_12m", "not paying"): round(50 / 3, 6),  # C5's 50 over C3, C4, C5
        ("purchase_frequency_12m", "all"): round(4 / 3, 6),
        ("points_outstanding", "all"): 530,
        ("points_liability", "all"): 5.3,  # 530 points at the bundled program's point_value 0.01
        ("points_issued", "all"): 640,
        ("points_redeemed", "all"): 50,
        ("points_expired", "all"): 20,
        ("redemption_rate", "all"): round(50 / 640, 6),
        ("breakage_rate", "all"): round(20 / 640, 6),
        # Lots past their expiry date (E1's left out): C2's 300, of which 20 expired.
        ("breakage_estimate", "all"): round(20 / 300, 6),
        # The liability 5.30 times the expected redemption 1 - 20/300.
        ("deferred_revenue", "all"): round(5.3 * 280 / 300, 6),
        ("members_per_tier", "Member"): 3,
        ("members_per_tier", "Silver"): 2,
        ("customers_per_rfm_segment", "At Risk"): 1,
        ("customers_per_rfm_segment", "New"): 1,
        ("customers_per_rfm_segment", "Potential Loyalists"): 1,
        ("customers_per_rfm_segment", "Prospect"): 2,
        ("customers_per_lifecycle_stage", "active"): 1,
        ("customers_per_lifecycle_stage", "at risk"): 1,
        ("customers_per_lifecycle_stage", "new"): 1,
        ("customers_per_lifecycle_stage", "prospect"): 2,
        ("customers_per_channel_mix", "app-only"): 1,
        ("customers_per_channel_mix", "no purchase"): 2,
        ("customers_per_channel_mix", "omnichannel"): 1,
        ("customers_per_channel_mix", "store-only"): 1,
        ("omnichannel_share", "all"): round(1 / 3, 6),
        ("average_spend", "omnichannel"): 301.39,
        ("average_spend", "single channel"): 625.0,  # (1200 + 50) / 2
        # Only C1's second period runs past the as-of date.
        ("paying_members", "all"): 1,
        ("paying_members", "Plus Monthly"): 1,
        # Judged: C1's first (renewed) and C2's (ended 1 Feb, grace over); C1's second still runs;
        # refunded and unknown plans never count.
        ("membership_renewal_rate", "all"): 0.5,
    }


def test_monthly_kpis_by_hand(kpis):
    monthly = {key: value for key, value in kpis.items() if key[1] != "as_of"}
    assert monthly == {
        ("revenue", "2025-01", "app"): 900.0,
        ("revenue", "2026-01", "app"): 300.0,
        ("revenue", "2026-05", "store"): 200.99,
        ("revenue", "2026-06", "web"): 100.4,
        ("revenue", "2026-06", "store"): 50.0,
        ("orders", "2025-01", "app"): 1,
        ("orders", "2026-01", "app"): 1,
        ("orders", "2026-05", "store"): 1,
        ("orders", "2026-06", "web"): 1,
        ("orders", "2026-06", "store"): 1,
        ("average_order_value", "2025-01", "all"): 900.0,
        ("average_order_value", "2026-01", "all"): 300.0,
        ("average_order_value", "2026-05", "all"): 200.99,
        ("average_order_value", "2026-06", "all"): 75.2,
        ("active_members", "2025-01", "all"): 1,
        ("active_members", "2026-01", "all"): 1,
        ("active_members", "2026-05", "all"): 1,
        ("active_members", "2026-06", "all"): 2,
        # Of last month's buyers, the share buying this month: C2 never came back the month
        # after; C1 bought in May and June. July is after the as-of date.
        ("retention_rate", "2025-02", "all"): 0.0,
        ("retention_rate", "2026-02", "all"): 0.0,
        ("retention_rate", "2026-06", "all"): 1.0,
        ("churn_rate", "2025-02", "all"): 1.0,
        ("churn_rate", "2026-02", "all"): 1.0,
        ("churn_rate", "2026-06", "all"): 0.0,
        ("enrolments", "2025-01", "app"): 1,
        ("enrolments", "2025-03", "store"): 1,
        ("enrolments", "2026-01", "web"): 1,
        ("enrolments", "2026-02", "app"): 1,
        ("enrolments", "2026-06", "store"): 2,
        ("enrolments", "2026-06", "web"): 1,
        ("points_issued", "2026-01", "earn"): 300,
        ("points_issued", "2026-02", "earn"): 40,
        ("points_issued", "2026-05", "earn"): 200,
        ("points_issued", "2026-06", "earn"): 100,
        ("points_redeemed", "2026-06", "all"): 50,
        ("points_expired", "2026-03", "all"): 20,
        # At each month's end since the first ledger entry: the ledger's running sum (June is
        # the snapshot's 530), its value at 0.01 a point, the breakage estimate (none before
        # C2's lot is past its expiry in March) and the deferred revenue (the whole liability
        # while there is no estimate).
        ("points_outstanding", "2026-01", "all"): 300,
        ("points_outstanding", "2026-02", "all"): 340,
        ("points_outstanding", "2026-03", "all"): 280,  # - 20 expired - 40 erased
        ("points_outstanding", "2026-04", "all"): 280,
        ("points_outstanding", "2026-05", "all"): 480,
        ("points_outstanding", "2026-06", "all"): 530,
        ("points_liability", "2026-01", "all"): 3.0,
        ("points_liability", "2026-02", "all"): 3.4,
        ("points_liability", "2026-03", "all"): 2.8,
        ("points_liability", "2026-04", "all"): 2.8,
        ("points_liability", "2026-05", "all"): 4.8,
        ("points_liability", "2026-06", "all"): 5.3,
        ("breakage_estimate", "2026-03", "all"): round(20 / 300, 6),
        ("breakage_estimate", "2026-04", "all"): round(20 / 300, 6),
        ("breakage_estimate", "2026-05", "all"): round(20 / 300, 6),
        ("breakage_estimate", "2026-06", "all"): round(20 / 300, 6),
        ("deferred_revenue", "2026-01", "all"): 3.0,
        ("deferred_revenue", "2026-02", "all"): 3.4,
        ("deferred_revenue", "2026-03", "all"): round(2.8 * 280 / 300, 6),
        ("deferred_revenue", "2026-04", "all"): round(2.8 * 280 / 300, 6),
        ("deferred_revenue", "2026-05", "all"): round(4.8 * 280 / 300, 6),
        ("deferred_revenue", "2026-06", "all"): round(5.3 * 280 / 300, 6),
        ("tier_movements", "2025-01", "upgrade to Silver"): 1,
        ("tier_movements", "2026-05", "upgrade to Silver"): 1,
    }


def test_every_kpi_has_its_unit(con, kpis):
    units = dict(con.execute("select distinct kpi, unit from marts.kpis").fetchall())
    assert (
        len(units) == con.execute("select count(distinct kpi) from marts.kpis").fetchone()[0]
    )  # one unit a KPI
    assert {kpi for kpi, unit in units.items() if unit == "rate"} == {
        "identity_match_rate",
        "retention_rate_90d",
        "repeat_purchase_rate",
        "redemption_rate",
        "breakage_rate",
        "breakage_estimate",
        "omnichannel_share",
        "retention_rate",
        "churn_rate",
        "membership_renewal_rate",
    }
    assert set(units.values()) == {"rate", "count", "currency", "points", "number"}
