"""Settings are checked before any work: a bad value is one clear line, never a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from assets.shared.defaults import SettingsError, check_settings, parsed
from pipelines.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "OMNILOYAL_MAX_BAD_ROW_SHARE",
            "five",
            "max_bad_row_share (from OMNILOYAL_MAX_BAD_ROW_SHARE) must be a number from 0 to 1, got 'five'",
        ),
        ("OMNILOYAL_MAX_BAD_ROW_SHARE", "1.5", "must be a number from 0 to 1"),
        (
            "OMNILOYAL_KEEP_VERSIONS",
            "-1",
            "keep_versions (from OMNILOYAL_KEEP_VERSIONS) must be a whole number of at least 0, got '-1'",
        ),
        ("OMNILOYAL_MAX_PEOPLE_PER_IDENTIFIER", "1", "must be a whole number of at least 2"),
        (
            "OMNILOYAL_EXPORT_HASHES",
            "maybe",
            "export_hashes (from OMNILOYAL_EXPORT_HASHES) must be true or false",
        ),
        (
            "OMNILOYAL_PHONE_REGION",
            "XX",
            "phone_region (from OMNILOYAL_PHONE_REGION) must be a two-letter region",
        ),
        (
            "OMNILOYAL_PROGRAM",
            "/no/such/program.yaml",
            "program_file (from OMNILOYAL_PROGRAM) must be an existing file",
        ),
    ],
)
def test_a_bad_setting_stops_the_run_with_one_line(
    monkeypatch, capsys, tmp_path, variable, value, expected
):
    monkeypatch.setenv(variable, value)
    assert main(["run", "--inbox", str(tmp_path), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.startswith("omniloyal run: setting ") and err.count("\n") == 1
    assert not (tmp_path / "w.duckdb").exists()


def test_a_bad_date_from_the_environment_is_refused_by_the_parser(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("OMNILOYAL_AS_OF", "2026-02-30")
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--inbox", str(tmp_path)])
    assert stopped.value.code == 2
    assert "expected a date as YYYY-MM-DD, got '2026-02-30'" in capsys.readouterr().err


def test_every_problem_is_named_at_once_and_good_values_are_read():
    with pytest.raises(SettingsError) as raised:
        check_settings({"keep_versions": "-1", "max_bad_row_share": "x"})
    assert "keep_versions" in str(raised.value) and "max_bad_row_share" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert parsed("keep_versions", " 3 ") == 3
    assert parsed("export_hashes", "Yes") is True
    assert parsed("max_bad_row_share", "0") == 0.0
    check_settings({})  # the built-in defaults are good


def test_the_resource_checks_values_set_in_the_launchpad(tmp_path):
    from assets.shared.settings import PipelineSettings

    settings = PipelineSettings(warehouse_path=str(tmp_path / "w.duckdb"), keep_versions=-1)
    with pytest.raises(SettingsError, match="keep_versions must be a whole number of at least 0"):
        with settings.build("run1"):
            pass


def _run_settings(tmp_path, program):
    from pipelines.definitions import RunSettings

    return RunSettings(
        warehouse_path=str(tmp_path / "w.duckdb"),
        exports_dir=str(tmp_path / "exports"),
        inbox_dir=str(tmp_path),
        program_file=str(program),
    )


def test_a_run_reads_the_program_once_so_an_edit_mid_run_changes_nothing(tmp_path):
    import dagster as dg

    from assets.shared.defaults import BUNDLED_PROGRAM
    from assets.shared.settings import PipelineSettings

    program = tmp_path / "program.yaml"
    bundled = BUNDLED_PROGRAM.read_text(encoding="utf-8")
    program.write_text(bundled)
    seen = []

    @dg.asset
    def ledger(settings: PipelineSettings) -> None:
        seen.append(settings.program())
        program.write_text(
            bundled.replace("\n  months: 12", "\n  months: 24")
        )  # marketing saves mid-run

    @dg.asset(deps=[ledger])
    def segments(settings: PipelineSettings) -> None:
        seen.append(settings.program())

    settings = _run_settings(tmp_path, program)
    assert dg.materialize([ledger, segments], resources={"settings": settings}).success
    assert [p.expiry_months for p in seen] == [12, 12]
    # The next run reads the file again: the edit is not lost, only kept out of the run it interrupted.
    seen.clear()
    assert dg.materialize([segments], resources={"settings": settings}).success
    assert [p.expiry_months for p in seen] == [24]


def test_a_broken_program_fails_the_run_before_the_first_asset(tmp_path):
    import dagster as dg

    from assets.shared.settings import PipelineSettings
    from pipelines.cli import _failures

    program = tmp_path / "program.yaml"
    program.write_text("earning: {}\n")
    started = []

    @dg.asset
    def first(settings: PipelineSettings) -> None:
        started.append(True)

    result = dg.materialize(
        [first], resources={"settings": _run_settings(tmp_path, program)}, raise_on_error=False
    )
    assert not result.success and started == []
    # What `omniloyal run` prints when the file broke after its own check: the line, no traceback.
    assert _failures(result) == [
        (
            "run start",
            f"{program}: earning.points_per_currency_unit has no rate for web, app, store",
        )
    ]


def test_omniloyal_run_refuses_a_broken_program_in_one_line_before_any_work(tmp_path):
    """Checked by the command line itself, before Dagster is imported or a warehouse made."""
    program = tmp_path / "program.yaml"
    program.write_text("tiers: {levels: []}\n")
    code = (
        "import sys\n"
        "from pipelines.cli import main\n"
        f"code = main(['run', '--inbox', {str(tmp_path)!r}, '--warehouse', {str(tmp_path / 'w.duckdb')!r},"
        f" '--program', {str(program)!r}])\n"
        "print(code, 'dagster' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert result.stderr == f"omniloyal run: {program}: earning is missing\n"
    assert list(tmp_path.iterdir()) == [program]  # no warehouse, lock or exports folder


def test_help_and_argument_errors_answer_without_importing_dagster():
    """`omniloyal --help` must answer at once: Dagster alone takes seconds to import."""
    code = (
        "import sys\n"
        "import pipelines.cli\n"
        "codes = []\n"
        "for argv in (['--help'], ['run', '--help'], ['run', '--bogus'], ['export']):\n"
        "    try:\n"
        "        pipelines.cli.build_parser().parse_args(argv)\n"
        "    except SystemExit as stop:\n"
        "        codes.append(stop.code)\n"
        "print(codes, 'dagster' in sys.modules, 'pandas' in sys.modules, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.stderr.splitlines()[-1] == "[0, 0, 2, 2] False False"
    assert "usage: omniloyal run" in result.stdout


def test_settings_are_read_when_the_resource_is_made_not_at_import():
    import subprocess
    import sys

    # A bad value in the environment does not break importing the asset modules...
    code = (
        "import assets.shared.settings, assets.loyalty.assets\n"
        "from assets.shared.defaults import SettingsError\n"
        "try:\n"
        "    assets.shared.settings.PipelineSettings()\n"
        "except SettingsError as err:\n"
        "    print(err)\n"
    )
    env = {"OMNILOYAL_KEEP_VERSIONS": "-1", "PATH": "", "DAGSTER_DISABLE_TELEMETRY": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    # ...and making the resource names the setting in one line.
    assert done.stdout.strip() == (
        "setting keep_versions (from OMNILOYAL_KEEP_VERSIONS) must be a whole number of at least 0, got '-1'"
    )
