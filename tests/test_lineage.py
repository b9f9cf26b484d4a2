"""Lineage from the SQL: the tables a model reads, and the Dagster graph built from them."""

import re
from pathlib import Path

import dagster as dg
import pytest

from assets.shared.lineage import LineageError, model_names, model_reads, step_reads, tables_read
from pipelines.definitions import defs

# --- tables_read on real models ---------------------------------------------------------


def test_a_model_reads_what_its_import_ctes_name():
    assert model_reads("core/events") == {
        "identity.source_records",
        "privacy.erased_records",
        "staging.web_orders",
        "staging.app_events",
        "staging.store_transactions",
        "staging.callcenter_contacts",
    }


def test_a_csv_read_through_a_variable_is_no_table():
    assert model_reads("identity/blocked_identifiers") == {"identity.record_keys"}


def test_a_cte_read_twice_and_joined_to_itself_is_one_raw_table():
    # orders is read by latest and by refunds, then joined back.
    assert model_reads("staging/web_orders") == {"raw.web_orders"}


def test_the_models_own_table_is_no_input():
    sql = "select * from core.customers union all by name select * from staging.web_customers"
    assert tables_read(sql, own_table="core.customers") == {"staging.web_customers"}
    assert tables_read(sql) == {"core.customers", "staging.web_customers"}


# --- tables_read on tricky SQL ----------------------------------------------------------


def test_a_cte_named_like_a_table_shadows_nothing():
    sql = """
    with web_orders as (select * from staging.web_orders),
    events as (select * from web_orders union all by name select * from staging.app_events)
    select * from events
    """
    assert tables_read(sql) == {"staging.web_orders", "staging.app_events"}


def test_subqueries_and_every_kind_of_join_are_read():
    sql = """
    with base as (select * from core.customers)
    select base.*, (select max(occurred_at) from core.events e where e.customer_id = base.customer_id) as last_event
    from base
    left join (select customer_id, sum(points) as points from loyalty.ledger group by 1) as sums using (customer_id)
    anti join identity.blocked_identifiers using (customer_id)
    cross join loyalty.program_settings
    where exists (select 1 from loyalty.balances b where b.customer_id = base.customer_id)
        and base.customer_id in (select customer_id from marts.segments)
    """
    assert tables_read(sql) == {
        "core.customers",
        "core.events",
        "loyalty.ledger",
        "identity.blocked_identifiers",
        "loyalty.program_settings",
        "loyalty.balances",
        "marts.segments",
    }


def test_macro_calls_and_table_functions_are_no_tables():
    sql = """
    with listed as (select * from read_csv(getvariable('blocked_identifiers_file'), header = true)),
    evidence as (select * from guard_evidence('identity.record_keys')),
    queried as (select * from query_table('identity.match_input'))
    select standardize_phone(phone, country) as phone_e164, plausible_birth_on(birth_date) as birth_on
    from raw.web_customers, listed, evidence, queried
    """
    assert tables_read(sql) == {"raw.web_customers"}


def test_names_are_compared_lower_case():
    assert (
        tables_read('select * from Staging."Web_Orders"', own_table="STAGING.web_orders")
        == frozenset()
    )


def test_an_unqualified_table_that_is_no_cte_is_refused():
    with pytest.raises(LineageError, match="web_orders"):
        tables_read("with o as (select 1) select * from o join web_orders using (x)")


def test_a_step_does_not_depend_on_what_it_builds_itself():
    assert step_reads(
        ["loyalty/debits", "loyalty/lot_expiry", "loyalty/debit_checks"],
        ["loyalty.customers_to_settle"],
    ) == ["loyalty.point_movements"]


# --- the Definitions follow the SQL -----------------------------------------------------

# Models a Python step runs (run_model in assets/<stage>/*.py) rather than sql_asset: the
# asset each one builds, and the tables the step makes for itself on the way.
STEP_SCRATCH = {
    "core": [],
    "identity": ["identity.previous_source_records"],
    "loyalty": ["loyalty.customers_to_settle"],
    "marts": [],
}
STEP_MODELS = {
    "marts/kpi_history": ("marts/kpi_history", ["marts/kpi_history"]),
    "core/customers": ("core/customers", ["core/customers"]),
    "core/customer_records": ("core/customer_records", ["core/customers", "core/customer_records"]),
    "identity/source_records": ("identity/source_records", ["identity/source_records"]),
    "identity/id_changes": (
        "identity/id_history",
        ["identity/source_records", "identity/id_changes"],
    ),
    "loyalty/debits": (
        "loyalty/debits",
        ["loyalty/debits", "loyalty/lot_expiry", "loyalty/debit_checks"],
    ),
    "loyalty/lot_expiry": (
        "loyalty/lot_expiry",
        ["loyalty/debits", "loyalty/lot_expiry", "loyalty/debit_checks"],
    ),
    "loyalty/debit_checks": (
        "loyalty/debits",
        ["loyalty/debits", "loyalty/lot_expiry", "loyalty/debit_checks"],
    ),
}
ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"


def _parents(key: str) -> set[str]:
    graph = defs.resolve_asset_graph()
    return {
        parent.to_user_string() for parent in graph.get(dg.AssetKey(key.split("/"))).parent_keys
    }


def _as_keys(tables) -> set[str]:
    return {table.replace(".", "/") for table in tables}


@pytest.mark.parametrize("model", model_names())
def test_every_model_asset_declares_exactly_what_its_sql_reads(model):
    if model in STEP_MODELS:
        key, models = STEP_MODELS[model]
        expected = step_reads(models, STEP_SCRATCH[model.split("/")[0]])
    else:
        key, expected = model, model_reads(model)
    assert _parents(key) == _as_keys(expected)


def test_every_model_a_python_step_runs_is_listed_here():
    """A model run by run_model outside sql_asset escapes the check above unless listed."""
    run = set()
    for path in ASSETS_DIR.glob("*/*.py"):
        run |= set(
            re.findall(r'run_model\(\s*\w+\s*,\s*"([^"]+)"', path.read_text(encoding="utf-8"))
        )
    assert run == set(STEP_MODELS)


def test_every_input_of_every_asset_is_built_by_an_asset():
    """A table the SQL reads that no asset builds would show as an unbuilt source in the graph."""
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        for parent in graph.get(key).parent_keys:
            assert graph.get(parent).is_materializable, (
                f"{key.to_user_string()} reads {parent.to_user_string()}"
            )
