"""The program file: the bundled one loads, and broken ones fail naming the file and field."""

import pytest
import yaml

from assets.loyalty.program import DEFAULT_PROGRAM, ProgramError, ProgramFile, load_program


def test_the_bundled_program_loads_and_round_trips(tmp_path):
    """What the schema reads it can write back: the file as dumped loads to the same Program."""
    doc = yaml.safe_load(DEFAULT_PROGRAM.read_text(encoding="utf-8"))
    dumped = tmp_path / "program.yaml"
    dumped.write_text(
        yaml.safe_dump(ProgramFile.model_validate(doc).model_dump(mode="json"), sort_keys=False)
    )
    assert load_program(dumped) == load_program(DEFAULT_PROGRAM)


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
    assert (
        program.enrolment_points,
        program.birthday_multiplier,
        program.engagement_daily_cap,
    ) == (100, 2.0, 30)
    assert [(t.name, t.threshold, t.earn_multiplier) for t in program.tiers] == [
        ("Member", 0, 1),
        ("Gold", 100, 2),
    ]


SHARE = "close_to_next_tier_share: 0.1"
# A custom segment appended to BASE's segments section, for the cases that break one.
VIPS = '\n  custom: [{name: VIPs, channel: email, where: [{column: tier, op: "=", value: Gold}]}]'


@pytest.mark.parametrize(
    "replace, add, message",
    [
        ("app: 2", "app: -1", "earning.points_per_currency_unit.app must be a number >= 0"),
        ("app: 2, ", "", "earning.points_per_currency_unit has no rate for app"),
        ("store: 1}", "store: 1, fax: 3}", "unknown channel 'fax'"),
        ("threshold: 0,", "threshold: 10,", "the first tier (Member) must start at 0"),
        (
            "threshold: 100,",
            "threshold: 0,",
            "tiers.levels[1] (Gold).threshold must be greater than tiers.levels[0].threshold (Member, 0)",
        ),
        (
            "earn_multiplier: 2}",
            "earn_multiplier: 0.5}",
            "tiers.levels[1] (Gold).earn_multiplier must be a number >= 1",
        ),
        (
            "qualify_on: spend",
            "qualify_on: visits",
            "tiers.qualify_on must be one of spend, points",
        ),
        ("months: 12}", "months: 0}", "expiry.months must be a whole number >= 1"),
        (
            "daily_cap: 30",
            "daily_cap: 2.5",
            "bonuses.engagement.daily_cap must be a whole number >= 0",
        ),
        ("{share: 10}", "{like: 10}", "unknown event 'like'"),
        (
            "enrolment_points: 100",
            "enrolment_points: lots",
            "bonuses.enrolment_points must be a whole number >= 0, got 'lots'",
        ),
        ("expiry: {months: 12}", "", "expiry is missing"),
        # An absent list or mapping meets the rules of an empty one.
        (
            "{web: 1, app: 2, store: 1}",
            "",
            "earning.points_per_currency_unit has no rate for web, app, store",
        ),
        ("  levels: [", "  lvls: [", "tiers.levels: at least one tier is required"),
        (
            "  value_bands: [{name: All, up_to_share: 1}]\n",
            "",
            "segments.value_bands: up_to_share must increase",
        ),
        (
            "expiry: {months: 12}",
            "expiry: [12]",
            "expiry: expected a section (a mapping), got [12]",
        ),
        ("r: [1, 5]", "r: [2, 5]", "rfm_segments do not cover the (r, fm) cells [(1, 1)"),
        ("fm: [1, 5]", "fm: [0, 5]", "fm must be [min, max] within 1-5"),
        # Text and booleans are not numbers, and NaN is no number at all: nothing is coerced.
        (
            "enrolment_points: 100",
            "enrolment_points: '100'",
            "bonuses.enrolment_points must be a whole number >= 0, got '100'",
        ),
        (
            "birthday_multiplier: 2",
            "birthday_multiplier: true",
            "bonuses.birthday_multiplier must be a number >= 1, got True",
        ),
        (
            "daily_cap: 30",
            "daily_cap: .nan",
            "bonuses.engagement.daily_cap must be a whole number >= 0, got nan",
        ),
        ("{name: Gold,", "{", "tiers.levels[1].name is missing"),
        (
            "{name: Gold, threshold: 100",
            "{name: Member, threshold: 100",
            "tiers.levels[1] (Member).name: tier names must be unique: 'Member' is also tiers.levels[0]",
        ),
        ("active: 90", "active: 20", "segments.lifecycle_days must increase from new to lapsed"),
        (
            "lapsed: 365}",
            "lapsed: 365, dormant: 700}",
            "segments.lifecycle_days.dormant is not a setting of this section",
        ),
        (
            "up_to_share: 1}",
            "up_to_share: 0.9}",
            "segments.value_bands: up_to_share must increase and the last must be 1",
        ),
        (
            "up_to_share: 1}",
            "up_to_share: 2}",
            "segments.value_bands[0] (All).up_to_share must be a number in (0, 1], got 2",
        ),
        (
            "min_events_90d: 0}",
            "min_events_90d: 1}",
            "segments.engagement_levels: min_events_90d must start at 0 and increase",
        ),
        (
            "close_to_next_tier_share: 0.1",
            "close_to_next_tier_share: 1",
            "segments.close_to_next_tier_share must be a number between 0 and 1, got 1",
        ),
        (
            SHARE,
            SHARE + VIPS.replace('op: "="', 'op: "~"'),
            "segments.custom[0] (VIPs).where[0].op must be one of = != < <= > >= in, got '~'",
        ),
        (
            SHARE,
            SHARE + VIPS.replace("email", "sms"),
            "segments.custom[0] (VIPs).channel must be one of email, push, got 'sms'",
        ),
        (
            SHARE,
            SHARE + VIPS.replace('op: "="', "op: in"),
            "segments.custom[0] (VIPs).where[0].value: `in` needs a non-empty list of values",
        ),
        (
            SHARE,
            SHARE + VIPS.replace('[{column: tier, op: "=", value: Gold}]', "[]"),
            "segments.custom[0] (VIPs).where needs at least one condition",
        ),
        (
            SHARE,
            SHARE + VIPS.replace("column: tier", "column: email"),
            "segments.custom[0] (VIPs).where[0].column: 'email' is not a non-personal column of marts.segments",
        ),
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
    assert "\n" not in str(raised.value)  # one line, never pydantic's report


def test_missing_and_unparseable_files(tmp_path):
    with pytest.raises(ProgramError, match="program file not found"):
        load_program(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("tiers: [unclosed")
    with pytest.raises(ProgramError, match="not valid YAML") as raised:
        load_program(tmp_path / "bad.yaml")
    assert "\n" not in str(raised.value)
