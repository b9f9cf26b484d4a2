"""One writer at a time: the run lock of a warehouse.

Two runs that overlap on one warehouse each build a copy of the published file and
publish it at the end; the last to publish would win and the deliveries only the
other run ingested would be gone. So a run holds `<published>.lock` (for example
`data/warehouse/omniloyal.duckdb.lock`) from its start to its end, and a second
run refuses, naming the owner.

The lock is an exclusive flock(2) on that file: the kernel releases it when the
owning process ends, however it ends, so a killed run can never block the next one.
The file also records the owner (pid, host, start time) for the refusal message.
A run that ends normally removes the file; a file left behind by a process that
is gone is a stale lock, taken over with a warning. A lock left by another host
(a warehouse on a shared disk) cannot be checked from here and is refused.

The lock is re-entrant within a process: `omniloyal run` takes it before starting
Dagster, and the run's settings resource (pipelines/definitions.py) takes it
again, which is how runs launched from the Dagster UI or schedule hold it too.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Locks this process holds: lock file -> [open file descriptor, times acquired].
_HELD: dict[str, list[int]] = {}


class WarehouseLocked(RuntimeError):
    """Another run holds the warehouse; the message names it."""


@dataclass(frozen=True)
class LockOwner:
    pid: int
    host: str
    started: str  # UTC, ISO 8601

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started}"


def lock_path(published_path: str | Path) -> Path:
    published = Path(published_path)
    return published.with_name(published.name + ".lock")


class RunLock:
    def __init__(self, published_path: str | Path):
        self.path = lock_path(published_path)
        # The owner of a stale lock this acquisition took over, for a warning.
        self.took_over: LockOwner | None = None

    @property
    def _key(self) -> str:
        return str(self.path.absolute())

    def held_here(self) -> bool:
        return self._key in _HELD

    def owner(self) -> LockOwner | None:
        """Who the lock file names, or None (no file, or an owner not yet written)."""
        try:
            return _parse(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def acquire(self, timeout_s: float = 0, poll_s: float = 0.2) -> RunLock:
        """Take the lock, waiting up to `timeout_s` for the owner to finish; WarehouseLocked if it does not."""
        if self.held_here():
            _HELD[self._key][1] += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout_s
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseLocked(self._busy_message()) from None
                time.sleep(poll_s)
                continue
            # The owner removes the file on release: what we locked may no longer be the
            # file at this path; then a newcomer may lock the new file. Try again on it.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            left = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            if left.strip():
                # A file nobody holds: its owner ended without releasing it (killed).
                stale = _parse(left) or LockOwner(0, "unknown host", "unknown time")
                if stale.host not in (socket.gethostname(), "unknown host"):
                    raise WarehouseLocked(
                        f"the warehouse lock {self.path} was left by {stale.describe()}, another host: "
                        f"if that run is no longer running there, remove the file and run again"
                    )
                self.took_over = stale
            owner = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(owner) + "\n").encode("utf-8"), 0)
        except BaseException:
            os.close(fd)
            raise
        _HELD[self._key] = [fd, 1]
        return self

    def release(self) -> None:
        """Give the lock back; the last release of this process removes the file."""
        held = _HELD.get(self._key)
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[self._key]
        # Removed while still locked, so nobody can take a file that is about to vanish.
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(held[0])

    def _busy_message(self) -> str:
        owner = self.owner()
        who = owner.describe() if owner else "a run that is just starting"
        return (
            f"the warehouse {self.path.with_suffix('')} is locked by another run ({who}); "
            f"one run at a time writes a warehouse: try again when it has finished"
        )

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _parse(text: str) -> LockOwner | None:
    try:
        found = json.loads(text)
        return LockOwner(int(found["pid"]), str(found["host"]), str(found["started"]))
    except (ValueError, KeyError, TypeError):
        return None
