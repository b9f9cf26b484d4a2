"""Campaigns with a holdout on small hand-built scenarios (issue 17).

The program is PROGRAM below (not the bundled one): web earns 1 point per unit, everyone
is Member (multiplier 1) unless a scenario buys Silver, and nobody has a birthday in the
months used. Every expected number is worked out in the comments.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from datetime import date
from pathlib import Path

import pytest
from loyalty_models import build_ledger
from report_helpers import AS_OF as REPORT_AS_OF
from report_helpers import hand_made_warehouse

from assets.exports.report import render_report
from assets.loyalty.program import ProgramError, load_program, write_program_tables
from assets.loyalty.settling import broken_invariants
from assets.privacy.erasure import create_privacy_tables
from assets.shared.warehouse import connect, run_model

BASE_PROGRAM = """
currency: GBP
point_value: 0.01
earning: {points_per_currency_unit: {web: 1, app: 1, store: 1}}
bonuses:
  enrolment_points: 0
  birthday_multiplier: 1
  engagement: {points_per_event: {share: 10}, daily_cap: 30}
expiry: {months: 12}
tiers:
  qualify_on: spend
  window_months: 12
  downgrade_grace_months: 3
  levels:
    - {name: Member, threshold: 0, earn_multiplier: 1}
    - {name: Silver, threshold: 500, earn_multiplier: 1}
segments:
  lifecycle_days: {new: 30, active: 90, at_risk: 180, lapsed: 365}
  value_bands: [{name: All, up_to_share: 1}]
  engagement_levels: [{name: Any, min_events_90d: 0}]
  close_to_next_tier_share: 0.1
rfm_segments: [{name: All, r: [1, 5], fm: [1, 5]}]
"""
AS_OF = date(2026, 4, 30)
CAMPAIGN = "Double March"


def draw(campaign: str, customer_id: str) -> float:
    """The documented assignment: md5(campaign|customer_id), its first 13 hex digits / 16^13."""
    return int(hashlib.md5(f"{campaign}|{customer_id}".encode()).hexdigest()[:13], 16) / 16**13


def ids_in_arms(campaign: str, share: float, treated: int, holdout: int) -> tuple[list, list]:
    """The first customer ids C001, C002, ... that the hash puts in each arm."""
    t, h = [], []
    for i in range(1, 1000):
        cid = f"C{i:03d}"
        arm = h if draw(campaign, cid) < share else t
        if len(arm) < (holdout if arm is h else treated):
            arm.append(cid)
        if len(t) == treated and len(h) == holdout:
            return t, h
    raise AssertionError("not enough ids")


def program_from(text: str):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "program.yaml"
        path.write_text(text)
        return load_program(path)


def build(con, program_text: str, customers: dict[str, str], purchases: list[tuple]) -> None:
    """customers: id -> web registration time; purchases: (id, key, occurred_at, amount,
    refunded_at). Runs the loyalty models in the asset graph's order, then campaign_results."""
    create_privacy_tables(con)
    con.execute(
        "create or replace table core.customers (customer_id varchar, birth_on date, first_registered_at timestamp)"
    )
    con.execute(
        "create or replace table identity.match_input (unique_id varchar, source varchar, source_record_id varchar, registered_at timestamp)"
    )
    con.execute(
        "create or replace table identity.source_records (source varchar, source_record_id varchar, customer_id varchar)"
    )
    for cid, registered_at in customers.items():
        con.execute(
            "insert into core.customers values (?, date '1980-09-01', ?::timestamp)",
            [cid, registered_at],
        )
        con.execute(
            "insert into identity.match_input values ('web:' || ?, 'web', ?, ?::timestamp)",
            [cid, cid, registered_at],
        )
        con.execute("insert into identity.source_records values ('web', ?, ?)", [cid, cid])
    con.execute(
        """
        create or replace table core.events (
            event_id varchar, customer_id varchar, channel varchar, source_event_id varchar, source_record_id varchar,
            event_type varchar, status varchar, occurred_at timestamp, occurred_on date, amount decimal(18, 2),
            points bigint, refunded_at timestamp, is_completed_purchase boolean)
        """
    )
    for cid, key, occurred_at, amount, refunded_at in purchases:
        con.execute(
            "insert into core.events values ('web:' || ?, ?, 'web', ?, ?, 'purchase', ?, ?::timestamp, "
            "?::timestamp::date, ?, null, ?::timestamp, ?)",
            [
                key,
                cid,
                key,
                cid,
                "refunded" if refunded_at else "completed",
                occurred_at,
                occurred_at,
                amount,
                refunded_at,
                refunded_at is None,
            ],
        )
    con.execute(f"set variable as_of = '{AS_OF.isoformat()}'::date")
    write_program_tables(con, program_from(program_text))
    build_ledger(con)
    run_model(con, "marts/campaign_results")


# --- Scenario A: uplift, cap and budget --------------------------------------------------
# Double March (1-31 March 2026), everyone registered before it, multiplier 2 (a purchase's
# reward is its base points again), cap 60 per member, budget 100, holdout share 0.5.
TREATED, HOLDOUT = ids_in_arms(CAMPAIGN, 0.5, 3, 3)
T1, T2, T3 = TREATED
H1, H2, H3 = HOLDOUT
PROGRAM_A = (
    BASE_PROGRAM
    + f"""
campaigns:
  - name: {CAMPAIGN}
    starts_on: 2026-03-01
    ends_on: 2026-03-31
    audience: all
    channel: email
    reward: {{multiplier: 2}}
    budget_points: 100
    cap_per_member: 60
    holdout_share: 0.5
"""
)
PURCHASES_A = [
    (T1, "A1", "2026-03-05 10:00", 50, None),  # reward 50: cap left 10, budget left 50
    (T2, "A2", "2026-03-10 10:00", 45, None),  # reward 45: budget left 5
    (T3, "A3", "2026-03-12 10:00", 70, "2026-03-15 10:00"),  # refunded: no reward, no spend
    (T1, "A4", "2026-03-20 10:00", 30, None),  # reward 30 -> cap 10 -> budget 5
    (T3, "A5", "2026-02-10 10:00", 100, None),  # before the period
    (T2, "A6", "2026-04-01 10:00", 80, None),  # after the period
    (H1, "A7", "2026-03-08 10:00", 40, None),  # holdout: never a reward
    (H2, "A8", "2026-03-09 10:00", 20, None),
    (H2, "A9", "2026-03-25 10:00", 10, None),
]


@pytest.fixture(scope="module")
def scenario_a():
    con = connect(":memory:")
    build(con, PROGRAM_A, {c: "2025-01-01 09:00" for c in TREATED + HOLDOUT}, PURCHASES_A)
    yield con
    con.close()


def test_arms_are_the_documented_hash(scenario_a):
    arms = dict(
        scenario_a.execute("select customer_id, arm from loyalty.campaign_assignments").fetchall()
    )
    assert arms == {
        **{c: "treatment" for c in TREATED},
        **{c: "holdout" for c in HOLDOUT},
    }


def test_the_holdout_gets_nothing(scenario_a):
    holdout_points = scenario_a.execute(
        "select count(*) from loyalty.ledger where rule = 'campaign' and customer_id in (?, ?, ?)",
        HOLDOUT,
    ).fetchall()[0][0]
    assert holdout_points == 0
    in_rewards = scenario_a.execute(
        "select count(*) from loyalty.campaign_rewards where customer_id in (?, ?, ?)", HOLDOUT
    ).fetchall()[0][0]
    assert in_rewards == 0


def test_cap_and_budget_stop_the_rewards_where_computed_by_hand(scenario_a):
    rows = scenario_a.execute(
        "select customer_id, source_event_id, reward_points, points, limited_by "
        "from loyalty.campaign_rewards order by occurred_at"
    ).fetchall()
    assert rows == [
        (T1, "A1", 50, 50, None),
        (T2, "A2", 45, 45, None),
        # T1 asked 30: the cap of 60 leaves 10, the budget of 100 leaves 100 - 95 = 5.
        (T1, "A4", 30, 5, "budget"),
    ]
    ledger = scenario_a.execute(
        "select customer_id, sum(points) from loyalty.ledger where rule = 'campaign' group by 1 order by 1"
    ).fetchall()
    assert ledger == sorted([(T1, 55), (T2, 45)])
    assert not any(broken_invariants(scenario_a).values())


def test_a_member_cap_below_the_budget(tmp_path):
    # Same purchases, budget 1000: T1's second purchase gets 60 - 50 = 10, limited by the cap.
    con = connect(":memory:")
    build(
        con,
        PROGRAM_A.replace("budget_points: 100", "budget_points: 1000"),
        {c: "2025-01-01 09:00" for c in TREATED + HOLDOUT},
        PURCHASES_A,
    )
    rows = con.execute(
        "select source_event_id, points, limited_by from loyalty.campaign_rewards order by occurred_at"
    ).fetchall()
    assert rows == [("A1", 50, None), ("A2", 45, None), ("A4", 10, "cap_per_member")]
    con.close()


def test_uplift_and_its_interval_equal_the_hand_computation(scenario_a):
    result = scenario_a.execute(
        "select * from marts.campaign_results where campaign = ?", [CAMPAIGN]
    ).df()
    row = result.iloc[0]
    # Spend in March, completed only: treated T1 50 + 30 = 80, T2 45, T3 0 (refunded);
    # holdout H1 40, H2 20 + 10 = 30, H3 0.
    treated, holdout = [80.0, 45.0, 0.0], [40.0, 30.0, 0.0]
    mean_t, mean_h = sum(treated) / 3, sum(holdout) / 3  # 41.667, 23.333
    var_t = sum((x - mean_t) ** 2 for x in treated) / 2  # 1608.33
    var_h = sum((x - mean_h) ** 2 for x in holdout) / 2  # 433.33
    se = math.sqrt(var_t / 3 + var_h / 3)  # 26.087
    uplift = mean_t - mean_h  # 18.333
    assert (row.treated_members, row.holdout_members) == (3, 3)
    assert row.treated_purchases_per_member == pytest.approx(1.0)  # (2 + 1 + 0) / 3
    assert row.holdout_purchases_per_member == pytest.approx(1.0)  # (1 + 2 + 0) / 3
    assert row.treated_spend_per_member == pytest.approx(41.67)
    assert row.holdout_spend_per_member == pytest.approx(23.33)
    assert row.uplift_spend_per_member == pytest.approx(18.33)
    assert row.uplift_ci_low == pytest.approx(round(uplift - 1.959964 * se, 2))  # -32.80
    assert row.uplift_ci_high == pytest.approx(round(uplift + 1.959964 * se, 2))  # 69.46
    assert row.uplift_ci_low == pytest.approx(-32.80)
    assert row.uplift_ci_high == pytest.approx(69.46)
    # 100 points issued, all of the budget; at 0.01 each, 1.00 for 18.333 x 3 = 55 of revenue.
    assert (row.points_issued, row.budget_points) == (100, 100)
    assert row.budget_used_share == pytest.approx(1.0)
    assert row.cost_per_incremental_revenue == pytest.approx(round(1.0 / 55, 4))
    assert bool(row.is_finished)


def test_no_cost_when_the_uplift_is_not_positive(tmp_path):
    # The holdout outspends: H1 buys 500 in March.
    con = connect(":memory:")
    build(
        con,
        PROGRAM_A,
        {c: "2025-01-01 09:00" for c in TREATED + HOLDOUT},
        PURCHASES_A + [(H1, "A10", "2026-03-30 10:00", 500, None)],
    )
    uplift, cost = con.execute(
        "select uplift_spend_per_member, cost_per_incremental_revenue from marts.campaign_results"
    ).fetchall()[0]
    assert uplift < 0 and cost is None
    con.close()


# --- Scenario B: the audience as of the start ----------------------------------------------
# Winback (from 1 March 2026): members at risk at the start who spent at least 100 in the
# 12 months before. Silver Thanks: members holding Silver at the start. Holdout share 0.01:
# with these few ids, the hash puts none of them in the holdout (asserted below).
PROGRAM_B = (
    BASE_PROGRAM
    + """
campaigns:
  - {name: Winback, starts_on: 2026-03-01, ends_on: 2026-03-31, audience: {lifecycle: [at risk], min_spend_12m: 100},
     channel: push, reward: {bonus_points: 7}, budget_points: 1000, cap_per_member: 100, holdout_share: 0.01}
  - {name: Silver Thanks, starts_on: 2026-03-01, ends_on: 2026-03-31, audience: {tier: [Silver]},
     channel: email, reward: {bonus_points: 3}, budget_points: 1000, cap_per_member: 100, holdout_share: 0.01}
  - {name: Next Year, starts_on: 2027-01-01, ends_on: 2027-01-31, audience: all,
     channel: email, reward: {bonus_points: 3}, budget_points: 1000, cap_per_member: 100, holdout_share: 0.5}
"""
)
CUSTOMERS_B = {
    # Last purchase 15 Oct 2025: 136 days before 28 Feb (the day before the start) -> at risk
    # (90 <= 136 < 180), spend 150. In Winback, although a March purchase makes them active.
    "RISK": "2025-01-01 09:00",
    # At risk too, but spent only 60: not in Winback.
    "SMALL": "2025-01-01 09:00",
    # Active at the start (purchase 10 Feb): not in Winback; 600 on 1 Dec 2025 -> Silver then.
    "SILVER": "2025-01-01 09:00",
    # Reaches Silver only in March, after the start: not in Silver Thanks.
    "LATE": "2025-01-01 09:00",
    # At risk and spent 200, but registered after the start: in no campaign.
    "NEWBIE": "2026-03-05 09:00",
}
PURCHASES_B = [
    ("RISK", "B1", "2025-10-15 10:00", 150, None),
    ("RISK", "B2", "2026-03-10 10:00", 20, None),
    ("SMALL", "B3", "2025-10-15 10:00", 60, None),
    ("SILVER", "B4", "2025-12-01 10:00", 600, None),
    ("SILVER", "B5", "2026-02-10 10:00", 10, None),
    ("SILVER", "B6", "2026-03-02 10:00", 10, None),
    ("LATE", "B7", "2026-03-15 10:00", 600, None),
    ("NEWBIE", "B8", "2025-10-15 10:00", 200, None),
]


@pytest.fixture(scope="module")
def scenario_b():
    con = connect(":memory:")
    build(con, PROGRAM_B, CUSTOMERS_B, PURCHASES_B)
    yield con
    con.close()


def test_the_audience_is_chosen_on_facts_before_the_start(scenario_b):
    rows = scenario_b.execute(
        "select campaign, customer_id, arm, lifecycle_stage_at_start, tier_at_start, spend_12m_before_start "
        "from loyalty.campaign_assignments order by all"
    ).fetchall()
    assert [
        (c, cid, arm, stage, tier, float(spend)) for c, cid, arm, stage, tier, spend in rows
    ] == [
        ("Silver Thanks", "SILVER", "treatment", "active", "Silver", 610.0),
        ("Winback", "RISK", "treatment", "at risk", "Member", 150.0),
    ]
    # No audience for a campaign that has not started.
    assert (
        scenario_b.execute(
            "select count(*) from marts.campaign_results where campaign = 'Next Year'"
        ).fetchall()[0][0]
        == 0
    )


def test_bonus_points_per_purchase_in_the_period(scenario_b):
    rows = scenario_b.execute(
        "select campaign, customer_id, source_event_id, points from loyalty.campaign_rewards order by all"
    ).fetchall()
    assert rows == [("Silver Thanks", "SILVER", "B6", 3), ("Winback", "RISK", "B2", 7)]


def test_assignment_is_stable_and_near_the_holdout_share():
    # 20,000 members, holdout share 0.2: the share is within 4 standard errors
    # (sqrt(0.2 x 0.8 / 20000) = 0.0028), and rebuilding gives the same arms.
    con = connect(":memory:")
    customers = {f"M{i:05d}": "2025-01-01 09:00" for i in range(20000)}
    create_privacy_tables(con)
    con.execute(
        "create or replace table identity.match_input as select 'web:' || id as unique_id, 'web' as source, "
        "id as source_record_id, timestamp '2025-01-01 09:00' as registered_at "
        "from (select 'M' || lpad(i::varchar, 5, '0') as id from range(20000) t(i))"
    )
    con.execute(
        "create or replace table identity.source_records as "
        "select source, source_record_id, source_record_id as customer_id from identity.match_input"
    )
    con.execute(
        "create or replace table core.events (event_id varchar, customer_id varchar, channel varchar, "
        "source_event_id varchar, source_record_id varchar, event_type varchar, status varchar, "
        "occurred_at timestamp, occurred_on date, amount decimal(18, 2), points bigint, "
        "refunded_at timestamp, is_completed_purchase boolean)"
    )
    con.execute(f"set variable as_of = '{AS_OF.isoformat()}'::date")
    write_program_tables(
        con, program_from(PROGRAM_A.replace("holdout_share: 0.5", "holdout_share: 0.2"))
    )
    run_model(con, "loyalty/qualifying_events")
    run_model(con, "loyalty/tier_history")
    run_model(con, "loyalty/campaign_assignments")
    first = con.execute(
        "select customer_id, arm from loyalty.campaign_assignments order by 1"
    ).fetchall()
    run_model(con, "loyalty/campaign_assignments")
    again = con.execute(
        "select customer_id, arm from loyalty.campaign_assignments order by 1"
    ).fetchall()
    assert first == again and len(first) == len(customers)
    holdout = sum(arm == "holdout" for _, arm in first) / len(first)
    assert abs(holdout - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 20000)
    # And each arm is the documented hash, computed here independently.
    assert all((draw(CAMPAIGN, cid) < 0.2) == (arm == "holdout") for cid, arm in first)
    con.close()


# --- The program file's campaigns section ---------------------------------------------------
GOOD = (
    "{name: Spring, starts_on: 2026-03-01, ends_on: 2026-03-31, audience: all, channel: email, "
    "reward: {multiplier: 2}, budget_points: 100, cap_per_member: 10, holdout_share: 0.2}"
)


@pytest.mark.parametrize(
    ("written", "instead", "message"),
    [
        ("ends_on: 2026-03-31", "ends_on: 2026-02-28", ".ends_on must not be before starts_on"),
        (
            "audience: all",
            "audience: {tier: [Gold]}",
            ".audience.tier: names no tier of tiers.levels: 'Gold'",
        ),
        (
            "audience: all",
            "audience: {segment: Champions}",
            ".audience.segment is not a setting of this section",
        ),
        (
            "audience: all",
            "audience: {lifecycle: [gone]}",
            ".audience.lifecycle[0] must be one of prospect, new",
        ),
        (
            "reward: {multiplier: 2}",
            "reward: {multiplier: 2, bonus_points: 5}",
            ".reward needs exactly one of multiplier or bonus_points",
        ),
        (
            "holdout_share: 0.2",
            "holdout_share: 1",
            ".holdout_share must be a number between 0 and 1",
        ),
        ("channel: email", "channel: sms", ".channel must be one of email, push, got 'sms'"),
        (
            "starts_on: 2026-03-01",
            "starts_on: 'next monday'",
            ".starts_on must be a date (YYYY-MM-DD)",
        ),
    ],
)
def test_a_bad_campaign_is_one_line_naming_the_key(tmp_path, written, instead, message):
    path = tmp_path / "program.yaml"
    path.write_text(BASE_PROGRAM + "campaigns:\n  - " + GOOD.replace(written, instead) + "\n")
    with pytest.raises(ProgramError) as err:
        load_program(path)
    assert str(err.value).startswith(f"{path}: campaigns[0] (Spring){message}")
    assert "\n" not in str(err.value)


def test_an_impossible_date_is_one_line_not_a_traceback(tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text(
        BASE_PROGRAM + "campaigns:\n  - " + GOOD.replace("2026-03-01", "2026-13-01") + "\n"
    )
    with pytest.raises(ProgramError, match=r"not valid YAML \(month must be in 1\.\.12\)"):
        load_program(path)


def test_two_campaigns_of_one_name_are_refused(tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text(BASE_PROGRAM + f"campaigns:\n  - {GOOD}\n  - {GOOD}\n")
    with pytest.raises(
        ProgramError, match=r"campaigns\[1\] \(Spring\)\.name: campaign names must be unique"
    ):
        load_program(path)


def test_no_campaigns_section_means_no_campaigns_and_an_empty_table():
    program = program_from(BASE_PROGRAM)
    assert program.campaigns == ()
    con = connect(":memory:")
    write_program_tables(con, program)
    assert con.execute("select count(*) from loyalty.program_campaigns").fetchall() == [(0,)]
    con.close()


def test_the_report_shows_each_campaign_against_its_holdout():
    con = hand_made_warehouse()
    page = render_report(con, REPORT_AS_OF)
    table = page[
        page.index("<table data-campaigns>") : page.index(
            "</table>", page.index("<table data-campaigns>")
        )
    ]
    # The row of marts.campaign_results as report_helpers wrote it, in GBP.
    assert (
        "<td>Spring Double</td><td>email</td><td>2026-03-01 to 2026-03-31</td><td>800</td><td>200</td>"
        "<td>£41.67</td><td>£23.33</td><td>£18.34</td><td>-£32.80 to £69.46</td>"
        "<td>12,500 of 20,000</td><td>0.0085</td>"
    ) in table
    con.close()
