"""The Dagster definitions: the graph's shape, the job, the schedule, the executor."""

import dagster as dg

from pipelines.definitions import defs

PUBLISH = dg.AssetKey("published_warehouse")
# Runs after the swap on purpose: it scrubs the copies outside the build, the version the
# publish just moved to previous/ among them, and writes no table (assets/privacy/assets.py).
AFTER_PUBLISH = {dg.AssetKey("erased_from_copies")}


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
    for key in set(graph.get_all_asset_keys()) - {PUBLISH} - AFTER_PUBLISH:
        assert step(key) in steps_before_publish, key
    for key in AFTER_PUBLISH:
        assert graph.get(key).parent_keys == {PUBLISH}, key


def test_assets_are_grouped_by_stage():
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert set(groups.values()) == {
        "ingest",
        "staging",
        "identity",
        "core",
        "loyalty",
        "marts",
        "exports",
    }
    assert groups["raw/web_customers"] == "ingest"
    assert groups["identity/source_records"] == "identity"
    assert groups["loyalty/ledger"] == "loyalty"


def test_daily_schedule_runs_the_whole_job_in_one_process():
    job = defs.resolve_job_def("omniloyal_everything")
    schedule = defs.resolve_schedule_def("omniloyal_everything_schedule")
    assert schedule.job_name == job.name
    # One writer per DuckDB file: steps must not run in parallel processes.
    assert job.executor_def.name == dg.in_process_executor.name


def test_the_inbox_sensor_requests_one_run_per_new_delivery(tmp_path):
    from assets.shared.settings import PipelineSettings

    sensor = defs.resolve_sensor_def("inbox_sensor")
    assert sensor.job_name == "omniloyal_everything"
    settings = PipelineSettings(inbox_dir=str(tmp_path))

    def tick(cursor):
        context = dg.build_sensor_context(cursor=cursor, resources={"settings": settings})
        result = sensor.evaluate_tick(context)
        return result.run_requests, result.cursor

    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "customers_20260601.csv").write_text("account_id\nW1\n")
    (tmp_path / "web" / "notes.txt").write_text("not a delivery")
    requests, cursor = tick(None)
    assert len(requests) == 1
    # Nothing new: no run, whatever the number of ticks.
    assert tick(cursor)[0] == [] and tick(cursor)[0] == []
    # Two files of the next delivery: one run for them, with a new run key.
    (tmp_path / "web" / "customers_20260602.csv").write_text("account_id\nW2\n")
    (tmp_path / "web" / "orders_20260602.csv").write_text("order_id\nO1\n")
    next_requests, next_cursor = tick(cursor)
    assert len(next_requests) == 1 and next_requests[0].run_key != requests[0].run_key
    assert next_requests[0].tags["omniloyal/new_files"] == "2"
    assert tick(next_cursor)[0] == []


def test_a_program_change_job_leaves_identity_out():
    job = defs.resolve_job_def("loyalty_and_marts")
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert {"loyalty/ledger", "marts/segments", "published_warehouse"} <= keys
    assert not {k for k in keys if k.startswith(("identity/", "staging/", "raw/", "core/"))}


def test_every_asset_has_a_description_owners_and_kinds():
    graph = defs.resolve_asset_graph()
    lacking = []
    for key in graph.get_all_asset_keys():
        spec = defs.resolve_assets_def(key).specs_by_key[key]
        if not (spec.description and spec.owners and spec.kinds):
            lacking.append(key.to_user_string())
    assert lacking == []


def test_metadata_previews_mask_personal_data():
    from assets.shared.sql_assets import table_metadata
    from assets.shared.warehouse import connect

    con = connect(":memory:")
    con.execute(
        "create table core.customers as select 'C1' as customer_id, 'Jonathan' as first_name, "
        "'jon@example.com' as email, 'Leeds' as city"
    )
    con.execute("create table loyalty.scratch as select 'Jonathan' as anything")
    preview = table_metadata(con, "core.customers")["preview"].value
    assert (
        "| C1 | J******n | j*************m | Leeds |" in preview
    )  # schemas/ flags first_name and email pii
    assert "Jonathan" not in preview and "jon@example.com" not in preview
    # A table schemas/ does not document is masked whole.
    assert "Jonathan" not in table_metadata(con, "loyalty.scratch")["preview"].value


def test_metadata_column_schema_has_types_descriptions_and_pii_tags_from_schemas():
    from assets.shared.sql_assets import table_metadata
    from assets.shared.warehouse import connect

    con = connect(":memory:")
    con.execute(
        "create table core.customers as select 'C1' as customer_id, 'Jonathan' as first_name, 42 as undocumented"
    )
    con.execute("create table loyalty.scratch as select 'Jonathan' as anything")
    schema = table_metadata(con, "core.customers")["dagster/column_schema"]
    assert [(c.name, c.type, c.description, c.tags) for c in schema.columns] == [
        ("customer_id", "VARCHAR", "the person (identity.source_records)", {}),
        (
            "first_name",
            "VARCHAR",
            "display form: the spelling most records use (the preferred first name)",
            {"pii": "true"},
        ),
        ("undocumented", "INTEGER", None, {"pii": "true"}),  # not in schemas/: treated as personal
    ]
    scratch = table_metadata(con, "loyalty.scratch")["dagster/column_schema"]
    assert [(c.name, c.description, c.tags) for c in scratch.columns] == [
        ("anything", None, {"pii": "true"})
    ]


def test_every_job_ends_in_the_warehouse_pool():
    """With the instance's pools at run granularity, limit 1, one run on the warehouse at a time."""
    from assets.exports.assets import WAREHOUSE_POOL

    assert defs.resolve_assets_def(PUBLISH).op.pool == WAREHOUSE_POOL
    for name in ("omniloyal_everything", "loyalty_and_marts"):
        assert PUBLISH in defs.resolve_job_def(name).asset_layer.executable_asset_keys


def test_a_run_holds_the_warehouse_lock_and_first_removes_what_failed_runs_left(tmp_path):
    from assets.shared.run_lock import RunLock, lock_path
    from assets.shared.settings import PipelineSettings
    from pipelines.definitions import RunSettings

    warehouse, exports = tmp_path / "omniloyal.duckdb", tmp_path / "exports"
    (tmp_path / "builds").mkdir()
    (tmp_path / "builds" / "killed.partial").write_bytes(b"half a copy")
    (exports / ".staging" / "failed-run" / "2026-06-30").mkdir(parents=True)
    settings = RunSettings(
        warehouse_path=str(warehouse), exports_dir=str(exports), inbox_dir=str(tmp_path)
    )
    seen = {}

    @dg.asset
    def probe(settings: PipelineSettings) -> None:
        seen["locked"] = RunLock(warehouse).held_here() and lock_path(warehouse).exists()
        seen["leftovers"] = [p.name for p in (tmp_path / "builds").iterdir()] + list(
            (exports / ".staging").glob("*")
        )

    assert dg.materialize([probe], resources={"settings": settings}).success
    assert seen == {"locked": True, "leftovers": []}
    assert not lock_path(warehouse).exists()
    # A sensor tick is no run: it takes no lock.
    sensor = defs.resolve_sensor_def("inbox_sensor")
    with dg.build_sensor_context(resources={"settings": settings}) as context:
        sensor.evaluate_tick(context)
        assert not lock_path(warehouse).exists() and not RunLock(warehouse).held_here()


def test_metadata_previews_escape_delivered_file_names():
    from assets.shared.sql_assets import table_metadata
    from assets.shared.warehouse import connect

    con = connect(":memory:")
    con.execute(
        "create table raw.deliveries as select 'web/orders_20260101\x1b[2J\n|x.csv' as file"
    )
    preview = table_metadata(con, "raw.deliveries")["preview"].value
    assert preview.splitlines()[2] == "| web/orders_20260101\\x1b[2J\\n\\|x.csv |"
