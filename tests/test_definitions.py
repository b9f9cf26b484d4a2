"""The Dagster definitions: the graph's shape, the job, the schedule, the executor."""

import dagster as dg

from pipelines.definitions import defs

PUBLISH = dg.AssetKey("published_warehouse")


def test_every_step_runs_before_the_publish_step():
    """A step running after the swap would write to a copy that is never published."""
    graph = defs.resolve_asset_graph()
    seen, frontier = set(), set(graph.get(PUBLISH).parent_keys)
    while frontier:
        key = frontier.pop()
        seen.add(key)
        frontier |= set(graph.get(key).parent_keys) - seen

    def step(key: dg.AssetKey) -> str:
        return defs.resolve_assets_def(key).node_def.name

    steps_before_publish = {step(key) for key in seen}
    for key in set(graph.get_all_asset_keys()) - {PUBLISH}:
        assert step(key) in steps_before_publish, key


def test_assets_are_grouped_by_stage():
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert set(groups.values()) == {"ingest", "staging", "identity", "core", "loyalty", "marts", "exports"}
    assert groups["raw/web_customers"] == "ingest"
    assert groups["identity/source_records"] == "identity"
    assert groups["loyalty/ledger"] == "loyalty"


def test_daily_schedule_runs_the_whole_job_in_one_process():
    job = defs.resolve_job_def("omniloyal_everything")
    schedule = defs.resolve_schedule_def("omniloyal_everything_schedule")
    assert schedule.cron_schedule == "0 5 * * *"
    assert schedule.job_name == job.name
    # One writer per DuckDB file: steps must not run in parallel processes.
    assert job.executor_def.name == dg.in_process_executor.name
