"""Issue 12's kill and overlap probes: a run killed at its exports or its publish leaves one
consistent published state (the previous run's warehouse and exports, or this run's), the
next run matches one that was never interrupted, and a run started while another holds the
warehouse refuses at once.

Kills during ingestion, matching and settling never reach the published files (a run
writes only its own build: test_end_to_end.py, a failed run); the exports and the publish were where
the probes found a mix, so those are the steps killed here, each in a process of its own.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.cli import main
from pipelines.generator import generate_inbox

# Minutes of runs in processes of their own: `make test-probes` (and CI) runs them, `make test`
# stays under two minutes without them.
pytestmark = [pytest.mark.e2e, pytest.mark.probe]

AS_OF = "2026-06-30"
OMNILOYAL = str(Path(sys.executable).parent / "omniloyal")


def _run_args(workspace: Path) -> list[str]:
    return [
        "run",
        "--inbox",
        str(workspace / "inbox"),
        "--warehouse",
        str(workspace / "w" / "omniloyal.duckdb"),
        "--exports",
        str(workspace / "x"),
        "--reports",
        str(workspace / "r"),
        "--as-of",
        AS_OF,
    ]


def _published(workspace: Path) -> tuple[str, str]:
    """The published warehouse's checksum and the published exports' manifest."""
    warehouse = hashlib.sha256((workspace / "w" / "omniloyal.duckdb").read_bytes()).hexdigest()
    return warehouse, (workspace / "x" / AS_OF / "manifest.json").read_text()


def _tables(workspace: Path) -> dict:
    with duckdb.connect(str(workspace / "w" / "omniloyal.duckdb"), read_only=True) as con:
        return {
            "ids": con.execute(
                "select source, source_record_id, customer_id from identity.source_records order by all"
            ).fetchall(),
            "balances": con.execute("select * from loyalty.balances order by all").fetchall(),
            "deliveries": con.execute("select file from raw.deliveries order by all").fetchall(),
        }


def _without_times(manifest: dict) -> dict:
    """A manifest without the times it was written at, which two runs never share."""
    manifest.pop("written_at", None)
    for entry in manifest["files"]:
        entry.pop("written_at", None)
    return manifest


def _kill_at(workspace: Path, step: str, capsys=None) -> None:
    """Start a run in its own process and SIGKILL it as `step` starts; with `capsys`, first
    check that a second run started meanwhile refuses, naming the first."""
    env = {**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1", "GX_ANALYTICS_ENABLED": "false"}
    env.pop("DAGSTER_HOME", None)
    run = subprocess.Popen(
        [OMNILOYAL, *_run_args(workspace), "--verbose"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    for line in run.stderr:
        if f" - {step} - STEP_START - " in line:
            if capsys is not None:
                capsys.readouterr()
                assert main(_run_args(workspace)) == 2
                (message,) = capsys.readouterr().err.strip().splitlines()
                assert f"is locked by another run (pid {run.pid} on " in message
            run.kill()
            break
    run.wait()
    assert run.returncode != 0, f"the run ended before {step} started"


def test_a_run_killed_at_its_exports_or_its_publish_leaves_one_consistent_state(tmp_path, capsys):
    full = tmp_path / "full"
    generate_inbox(
        people=200, seed=5, out_dir=full, end_date=date.fromisoformat(AS_OF), days=2, bad_row_rate=0
    )
    workspace, reference = tmp_path / "workspace", tmp_path / "reference"
    shutil.copytree(full, workspace / "inbox", ignore=shutil.ignore_patterns("*_20260630.*"))
    assert main(_run_args(workspace)) == 0  # day one, published
    shutil.copytree(workspace, reference)
    for path in full.rglob("*_20260630.*"):
        for target in (workspace, reference):
            shutil.copy(path, target / "inbox" / path.relative_to(full))
    assert main(_run_args(reference)) == 0  # day two, never interrupted
    day_one = _published(workspace)

    _kill_at(workspace, "segment_exports", capsys)  # exports half written, nothing published
    assert _published(workspace) == day_one

    _kill_at(workspace, "published_warehouse")  # before, during or after the swaps
    warehouse, manifest = _published(workspace)
    if warehouse == day_one[0]:
        assert manifest == day_one[1]
    elif manifest == day_one[1]:
        # Killed between the warehouse swap and the exports swap: the exports wait, marked,
        # for the next run's start to put them in place.
        markers = list((workspace / "x" / ".staging").glob("*/.publishing.json"))
        assert len(markers) == 1

    assert main(_run_args(workspace)) == 0
    assert _tables(workspace) == _tables(reference)
    published, expected = (
        _without_times(json.loads(_published(ws)[1])) for ws in (workspace, reference)
    )
    assert published == expected  # the same files, columns, row counts and checksums
    assert not (workspace / "x" / ".staging").exists()
