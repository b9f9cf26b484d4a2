"""The inbox sensor: a run when new deliveries land, one run per new batch of files.

The cursor holds every contract file already seen (its path, size and modification
time), so each file triggers one run: a file seen before, even if the run it triggered
failed, triggers nothing again (run the job by hand after fixing it); a file rewritten in
place (new size or time) counts as new. Files that are not contract files are ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import dagster as dg

from assets.ingest.contract import classify
from assets.ingest.deliveries import shown
from assets.shared.settings import PipelineSettings


def inbox_files(inbox: Path) -> dict[str, str]:
    """Contract files under the inbox: relative path -> 'size:mtime_ns'.

    Links are not followed (a link in the inbox is a delivery error the run reports, and
    its target's size is none of the sensor's business): they count by their own lstat.
    """
    found = {}
    for folder, folders, files in os.walk(inbox, followlinks=False):
        folders.sort()
        for name in sorted(files):
            path = Path(folder) / name
            relative = path.relative_to(inbox).as_posix()
            if classify(relative) is not None:
                stat = path.lstat()
                found[relative] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return found


def new_deliveries(seen: dict[str, str], present: dict[str, str]) -> list[str]:
    return sorted(path for path, version in present.items() if seen.get(path) != version)


def build_inbox_sensor(job: dg.JobDefinition, interval_seconds: int = 60) -> dg.SensorDefinition:
    @dg.sensor(
        job=job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Start a run when new contract files land in the inbox (one run per new batch).",
    )
    def inbox_sensor(context: dg.SensorEvaluationContext, settings: PipelineSettings):
        inbox = Path(settings.inbox_dir)
        if not inbox.is_dir():
            return dg.SkipReason(f"inbox {inbox} does not exist")
        seen = json.loads(context.cursor) if context.cursor else {}
        present = inbox_files(inbox)
        new = new_deliveries(seen, present)
        if not new:
            return dg.SkipReason("no new deliveries")
        # File names and sizes only in the run key and tags: never their contents.
        run_key = hashlib.sha256("\n".join(f"{p}@{present[p]}" for p in new).encode()).hexdigest()[
            :16
        ]
        context.update_cursor(json.dumps({**seen, **present}, sort_keys=True))
        return dg.RunRequest(
            run_key=run_key,
            tags={"omniloyal/new_files": str(len(new)), "omniloyal/first_file": shown(new[0])},
        )

    return inbox_sensor
