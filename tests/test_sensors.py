"""The inbox sensor: one run per new batch of contract files, names escaped, links not followed."""

import os

import dagster as dg

from assets.shared.settings import PipelineSettings
from pipelines.definitions import everything_job
from pipelines.sensors import build_inbox_sensor, inbox_files


def _evaluate(sensor, inbox, cursor=None):
    context = dg.build_sensor_context(
        cursor=cursor, resources={"settings": PipelineSettings(inbox_dir=str(inbox))}
    )
    return sensor(context), context.cursor


def test_new_files_start_one_run_and_its_tag_shows_names_escaped(tmp_path):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "customers_2026\x1b[31m\n.csv").write_text("account_id\n1\n")
    (tmp_path / "web" / "notes.txt").write_text("not a contract file\n")
    sensor = build_inbox_sensor(everything_job)
    request, cursor = _evaluate(sensor, tmp_path)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["omniloyal/new_files"] == "1"
    assert request.tags["omniloyal/first_file"] == "web/customers_2026\\x1b[31m\\n.csv"
    again, _ = _evaluate(sensor, tmp_path, cursor)
    assert isinstance(again, dg.SkipReason)  # seen before: no second run


def test_a_link_counts_by_itself_not_by_its_target(tmp_path):
    (tmp_path / "web").mkdir()
    os.symlink("/etc/passwd", tmp_path / "web" / "customers_20260101.csv")
    found = inbox_files(tmp_path)
    link = os.lstat(tmp_path / "web" / "customers_20260101.csv")
    assert found == {"web/customers_20260101.csv": f"{link.st_size}:{link.st_mtime_ns}"}
