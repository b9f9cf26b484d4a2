"""The Dagster definitions: every asset and check, two jobs, a daily schedule, an inbox sensor.

Steps run in one process, one after another: they all write the run's single
DuckDB build file, and DuckDB allows one writer per file.
"""

from __future__ import annotations

import dagster as dg

from assets import exports, identity, ingest, loyalty, profiles, segments, standardize
from pipelines.sensors import build_inbox_sensor
from pipelines.settings import PipelineSettings

STAGE_MODULES = [ingest, standardize, identity, profiles, loyalty, segments, exports]

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

inbox_sensor = build_inbox_sensor(everything_job)

daily_schedule = dg.ScheduleDefinition(
    job=everything_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    description="Every morning after the sources' nightly exports have landed.",
)

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[everything_job, loyalty_and_marts_job],
    schedules=[daily_schedule],
    sensors=[inbox_sensor],
    resources={"settings": PipelineSettings()},
    executor=dg.in_process_executor,
)
