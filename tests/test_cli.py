"""The command line answers bad arguments with one clear line, before any work."""

import pytest

from assets.exports.segment_files import Audience, named_audience
from pipelines.cli import main


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["generate", "--people", "0"], "argument --people: must be at least 1, got 0"),
        (["generate", "--days", "x"], "argument --days: expected a whole number, got 'x'"),
        (
            ["generate", "--bad-row-rate", "2"],
            "argument --bad-row-rate: expected a number from 0 to 1, got 2.0",
        ),
    ],
)
def test_bad_generate_arguments_are_refused_by_the_parser(capsys, argv, expected):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert expected in capsys.readouterr().err


def test_a_truth_file_of_the_wrong_shape_is_one_line(tmp_path, capsys):
    (tmp_path / "w.duckdb").write_bytes(b"")
    (tmp_path / "truth.csv").write_text("a,b\n1,2\n")
    assert (
        main(
            [
                "evaluate",
                "--warehouse",
                str(tmp_path / "w.duckdb"),
                "--truth",
                str(tmp_path / "truth.csv"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing source, source_record_id, person_id" in err


AUDIENCES = [
    Audience("lifecycle", "at risk", "email", ()),
    Audience("rfm", "At Risk", "email", ()),
    Audience("rfm", "Champions", "email", ()),
    Audience("custom", "Gold Nearly Platinum", "email", ()),
]


def test_segments_are_named_in_any_case_or_by_file_name():
    assert named_audience(AUDIENCES, "champions").segment == "Champions"
    assert named_audience(AUDIENCES, " GOLD nearly platinum ").segment == "Gold Nearly Platinum"
    assert named_audience(AUDIENCES, "rfm_at_risk").segmentation == "rfm"


def test_an_ambiguous_or_unknown_segment_says_what_to_type():
    with pytest.raises(
        ValueError, match=r"'at risk' names 2 segments: .*\(lifecycle_at_risk\).*\(rfm_at_risk\)"
    ):
        named_audience(AUDIENCES, "at risk")
    with pytest.raises(ValueError) as raised:
        named_audience(AUDIENCES, "Champs")
    assert "Did you mean 'Champions'?" in str(raised.value)
    assert "lifecycle: at risk; rfm: At Risk, Champions; custom: Gold Nearly Platinum" in str(
        raised.value
    )
