"""The program file: the bundled one loads, and broken ones fail naming the file and field."""

import pytest

from assets.program import DEFAULT_PROGRAM, ProgramError, load_program


def test_bundled_program_loads():
    program = load_program(DEFAULT_PROGRAM)
    assert program.earn_rates == {"web": 1, "app": 1, "store": 1}
    assert [name for name, _ in program.tiers] == ["Member", "Silver", "Gold", "Platinum"]
    assert len(program.rfm_segments) == 10


BASE = """
earning: {points_per_currency_unit: {web: 1, app: 2, store: 1}}
tiers: [{name: Member, min_qualifying_spend: 0}, {name: Gold, min_qualifying_spend: 100}]
rfm_segments: [{name: All, r: [1, 5], fm: [1, 5]}]
"""


@pytest.mark.parametrize(
    "replace, add, message",
    [
        ("app: 2", "app: -1", "earning.points_per_currency_unit.app must be a number >= 0"),
        ("app: 2, ", "", "earning.points_per_currency_unit has no rate for app"),
        ("store: 1}", "store: 1, fax: 3}", "unknown channel 'fax'"),
        ("min_qualifying_spend: 0", "min_qualifying_spend: 10", "the first tier (Member) must start at 0"),
        ("min_qualifying_spend: 100", "min_qualifying_spend: 0", "must increase from one tier to the next"),
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
