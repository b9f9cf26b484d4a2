"""The program file: the bundled one loads, and broken ones fail naming the file and field."""

import pytest

from assets.loyalty.program import DEFAULT_PROGRAM, ProgramError, load_program


def test_bundled_program_loads():
    program = load_program(DEFAULT_PROGRAM)
    assert program.earn_rates == {"web": 1, "app": 1, "store": 1}
    assert [tier.name for tier in program.tiers] == ["Member", "Silver", "Gold", "Platinum"]
    assert (program.expiry_months, program.qualify_on, program.downgrade_grace_months) == (12, "spend", 3)
    assert program.engagement_points == {"share": 10, "review": 25, "check_in": 5}
    assert len(program.rfm_segments) == 10


BASE = """
earning: {points_per_currency_unit: {web: 1, app: 2, store: 1}}
bonuses:
  enrolment_points: 100
  birthday_multiplier: 2
  engagement: {points_per_event: {share: 10}, daily_cap: 30}
expiry: {months: 12}
tiers:
  qualify_on: spend
  window_months: 12
  downgrade_grace_months: 3
  levels: [{name: Member, threshold: 0, earn_multiplier: 1}, {name: Gold, threshold: 100, earn_multiplier: 2}]
segments:
  lifecycle_days: {new: 30, active: 90, at_risk: 180, lapsed: 365}
  value_bands: [{name: All, up_to_share: 1}]
  engagement_levels: [{name: Any, min_events_90d: 0}]
  close_to_next_tier_share: 0.1
rfm_segments: [{name: All, r: [1, 5], fm: [1, 5]}]
"""


def test_a_minimal_program_loads(tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text(BASE)
    program = load_program(path)
    assert (program.enrolment_points, program.birthday_multiplier, program.engagement_daily_cap) == (100, 2.0, 30)
    assert [(t.name, t.threshold, t.earn_multiplier) for t in program.tiers] == [("Member", 0, 1), ("Gold", 100, 2)]


@pytest.mark.parametrize(
    "replace, add, message",
    [
        ("app: 2", "app: -1", "earning.points_per_currency_unit.app must be a number >= 0"),
        ("app: 2, ", "", "earning.points_per_currency_unit has no rate for app"),
        ("store: 1}", "store: 1, fax: 3}", "unknown channel 'fax'"),
        ("threshold: 0,", "threshold: 10,", "the first tier (Member) must start at 0"),
        ("threshold: 100,", "threshold: 0,", "thresholds must increase from one tier to the next"),
        ("earn_multiplier: 2}", "earn_multiplier: 0.5}", "tiers.levels[1] (Gold).earn_multiplier must be a number >= 1"),
        ("qualify_on: spend", "qualify_on: visits", "tiers.qualify_on must be one of spend, points"),
        ("months: 12}", "months: 0}", "expiry.months must be a whole number >= 1"),
        ("daily_cap: 30", "daily_cap: 2.5", "bonuses.engagement.daily_cap must be a whole number >= 0"),
        ("{share: 10}", "{like: 10}", "unknown event 'like'"),
        ("enrolment_points: 100", "enrolment_points: lots", "bonuses.enrolment_points must be a whole number >= 0, got 'lots'"),
        ("expiry: {months: 12}", "", "expiry: expected a section"),
        ("r: [1, 5]", "r: [2, 5]", "rfm_segments do not cover the (r, fm) cells [(1, 1)"),
        ("fm: [1, 5]", "fm: [0, 5]", "fm must be [min, max] within 1-5"),
    ],
)
def test_invalid_programs_are_refused_with_a_clear_message(tmp_path, replace, add, message):
    path = tmp_path / "program.yaml"
    assert replace in BASE
    path.write_text(BASE.replace(replace, add))
    with pytest.raises(ProgramError) as raised:
        load_program(path)
    assert str(raised.value).startswith(str(path))
    assert message in str(raised.value)


def test_missing_and_unparseable_files(tmp_path):
    with pytest.raises(ProgramError, match="program file not found"):
        load_program(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("tiers: [unclosed")
    with pytest.raises(ProgramError, match="not valid YAML"):
        load_program(tmp_path / "bad.yaml")
