"""The Dagster definitions: every asset and check, two jobs, a daily and a weekly schedule, an inbox sensor.

Steps run in one process, one after another: they all write the run's single
DuckDB build file, and DuckDB allows one writer per file. Runs on one warehouse
never overlap: each holds the warehouse's lock (RunSettings below), and the
publish step is in a concurrency pool (assets/exports/assets.py WAREHOUSE_POOL).
"""

from __future__ import annotations

import dagster as dg

from assets.core import assets as core
from assets.exports import assets as exports
from assets.exports.segment_files import clean_export_staging, finish_interrupted_publish
from assets.identity import assets as identity
from assets.ingest import assets as ingest
from assets.loyalty import assets as loyalty
from assets.marts import assets as marts
from assets.privacy import assets as privacy
from assets.shared.run_lock import RunLock
from assets.shared.settings import PipelineSettings
from assets.shared.warehouse import file_identity
from assets.staging import assets as staging
from pipelines.sensors import build_inbox_sensor

STAGE_MODULES = [ingest, staging, identity, core, loyalty, marts, privacy, exports]

all_assets = dg.load_assets_from_modules(STAGE_MODULES)
all_checks = dg.load_asset_checks_from_modules(STAGE_MODULES)

everything_job = dg.define_asset_job(
    "omniloyal_everything",
    selection=dg.AssetSelection.all(),
    description="Ingest new deliveries and rebuild every table, export and the published warehouse.",
)

# After a change to the program file: loyalty, marts and exports only, on the identity
# and profiles already published (the run still builds a copy and publishes it at the end).
loyalty_and_marts_job = dg.define_asset_job(
    "loyalty_and_marts",
    selection=dg.AssetSelection.groups("loyalty", "marts", "exports"),
    description="Rebuild the points, segments, KPIs, report and exports from the published identity and profiles.",
)


class RunSettings(PipelineSettings):
    """The settings resource, which for the whole of a run also holds the warehouse's lock.

    With the in-process executor Dagster sets a resource up once per run, before the
    first step, and tears it down after the last, failed or not: the one place that
    sees a run start and end, whether `omniloyal run` (which took the lock already;
    it is re-entrant), the UI or the schedule launched it. What failed runs left
    behind is removed here, at the start, holding the lock, so no running run's
    files are touched.
    """

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.run is None:  # a sensor tick, not a run
            return
        super().setup_for_execution(
            context
        )  # the program, read before the lock: a broken file holds nothing
        lock = RunLock(self.warehouse_path).acquire()
        try:
            if lock.took_over:
                context.log.warning(
                    f"took over the stale warehouse lock of {lock.took_over.describe()}: that run is gone"
                )
            warehouse = self.warehouse()
            completed = warehouse.finish_interrupted_publish()
            if completed:
                context.log.warning(
                    "put in place the analytics warehouse of a run killed while publishing: "
                    + ", ".join(str(path) for path in completed)
                )
            published = warehouse.published_path
            finished = finish_interrupted_publish(
                self.exports_dir, file_identity(published.stat()) if published.exists() else None
            )
            if finished:
                context.log.warning(
                    "put in place the exports of a run killed while publishing: "
                    + ", ".join(str(folder) for folder in finished)
                )
            leftovers = (
                warehouse.clean_leftovers()
            )  # failed builds: after min(2 days, retention_days)
            self._leftovers_removed = leftovers  # reported by the retention_purge step
            removed = leftovers + clean_export_staging(self.exports_dir)
        except BaseException:
            lock.release()  # no teardown follows a failed setup
            raise
        if removed:
            context.log.info(
                "removed leftovers of failed runs: " + ", ".join(str(path) for path in removed)
            )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if context.run is not None:
            RunLock(self.warehouse_path).release()


inbox_sensor = build_inbox_sensor(everything_job)

# Monday to Saturday: identity scores only the day's new and changed records when they are
# few (settings.identity_refresh auto). Sunday: a full refresh trains the matching model
# afresh on all records and scores every pair (assets/identity/incremental.py).
daily_schedule = dg.ScheduleDefinition(
    job=everything_job,
    cron_schedule="0 5 * * 1-6",
    execution_timezone="UTC",
    description="Every morning after the sources' nightly exports have landed (Sunday: the full refresh).",
)
weekly_full_refresh = dg.ScheduleDefinition(
    name="omniloyal_weekly_full_refresh",
    job=everything_job,
    cron_schedule="0 5 * * 0",
    execution_timezone="UTC",
    run_config={"resources": {"settings": {"config": {"identity_refresh": "full"}}}},
    description="Sunday morning: the daily run with identity trained afresh and every pair scored.",
)

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[everything_job, loyalty_and_marts_job],
    schedules=[daily_schedule, weekly_full_refresh],
    sensors=[inbox_sensor],
    resources={"settings": RunSettings()},
    executor=dg.in_process_executor,
)
