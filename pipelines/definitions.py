"""The Dagster definitions: every asset and check, one job, a daily schedule.

Steps run in one process, one after another: they all write the run's single
DuckDB build file, and DuckDB allows one writer per file.
"""

from __future__ import annotations

import dagster as dg

from assets import exports, identity, ingest, loyalty, profiles, segments, standardize
from pipelines.settings import PipelineSettings

STAGE_MODULES = [ingest, standardize, identity, profiles, loyalty, segments, exports]

all_assets = dg.load_assets_from_modules(STAGE_MODULES)
all_checks = dg.load_asset_checks_from_modules(STAGE_MODULES)

everything_job = dg.define_asset_job(
    "omniloyal_everything",
    selection=dg.AssetSelection.all(),
    description="Ingest new deliveries and rebuild every table, export and the published warehouse.",
)

daily_schedule = dg.ScheduleDefinition(
    job=everything_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    description="Every morning after the sources' nightly exports have landed.",
)

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[everything_job],
    schedules=[daily_schedule],
    resources={"settings": PipelineSettings()},
    executor=dg.in_process_executor,
)
