"""One writer at a time: the run lock, and two overlapping `omniloyal run`s on one warehouse."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assets.shared.run_lock import RunLock, WarehouseLocked, lock_path

ROOT = Path(__file__).resolve().parents[1]


def hold_lock_in_another_process(published: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from assets.shared.run_lock import RunLock; "
            f"RunLock({str(published)!r}).acquire(); print('ready', flush=True); time.sleep(60)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "ready"
    return holder


def test_a_second_owner_is_refused_with_the_owner_named(tmp_path):
    published = tmp_path / "omniloyal.duckdb"
    holder = hold_lock_in_another_process(published)
    try:
        with pytest.raises(WarehouseLocked) as refused:
            RunLock(published).acquire()
        message = str(refused.value)
        assert f"pid {holder.pid} on {socket.gethostname()}, started 20" in message
        assert "\n" not in message
        # Waiting: refused again after the timeout, not before.
        started = time.monotonic()
        with pytest.raises(WarehouseLocked):
            RunLock(published).acquire(timeout_s=0.5, poll_s=0.1)
        assert time.monotonic() - started >= 0.5
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the killed owner's lock: the next run takes it over, with a warning.
    lock = RunLock(published).acquire()
    try:
        assert lock.took_over is not None and lock.took_over.pid == holder.pid
        assert json.loads(lock_path(published).read_text())["pid"] == os.getpid()
    finally:
        lock.release()
    assert not lock_path(published).exists()


def test_a_run_that_ends_removes_the_lock_and_the_next_takes_it_silently(tmp_path):
    published = tmp_path / "omniloyal.duckdb"
    with RunLock(published) as lock:
        assert lock_path(published).exists()
        # Re-entrant within the process: `omniloyal run` and its settings resource both take it.
        with RunLock(published):
            pass
        assert lock.held_here() and lock_path(published).exists()
    assert not lock_path(published).exists()
    with RunLock(published) as again:
        assert again.took_over is None


def test_a_stale_lock_of_a_gone_process_is_taken_over(tmp_path):
    published = tmp_path / "omniloyal.duckdb"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock_path(published).write_text(
        json.dumps(
            {"pid": gone.pid, "host": socket.gethostname(), "started": "2026-06-30T05:00:00+00:00"}
        )
    )
    with RunLock(published) as lock:
        assert (
            lock.took_over.pid == gone.pid and lock.took_over.started == "2026-06-30T05:00:00+00:00"
        )


def test_a_lock_left_by_another_host_is_refused(tmp_path):
    published = tmp_path / "omniloyal.duckdb"
    lock_path(published).write_text(
        json.dumps({"pid": 1, "host": "elsewhere", "started": "2026-06-30T05:00:00+00:00"})
    )
    with pytest.raises(WarehouseLocked, match="left by pid 1 on elsewhere.*remove the file"):
        RunLock(published).acquire()
    assert lock_path(published).exists()  # not ours to remove
