import os

# Before dagster or great_expectations are imported by any test.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def pytest_collection_modifyitems(config, items):
    """Files with end-to-end tests first. `make test` hands whole files to its workers in the
    order they are collected (--no-loadscope-reorder; by default pytest-xdist starts with the
    files of most tests, which put the pipeline-running files of few tests last, one worker
    running them alone at the end). They take most of the time: longest first."""
    runs_the_pipeline = {item.module.__name__ for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: item.module.__name__ not in runs_the_pipeline)
