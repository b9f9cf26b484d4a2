"""Column comments from the catalog (schemas/warehouse/): on tables a Python step writes
without run_model too, and descriptions read whole."""

import duckdb
import pytest

from assets.shared import catalog
from assets.shared.warehouse import Warehouse


def comments(path, table: str) -> dict[str, str | None]:
    schema, name = table.split(".")
    con = duckdb.connect(str(path), read_only=True)
    try:
        return dict(
            con.execute(
                "select column_name, comment from duckdb_columns() "
                "where schema_name = ? and table_name = ?",
                [schema, name],
            ).fetchall()
        )
    finally:
        con.close()


def test_a_table_a_step_writes_itself_gets_its_comments_when_the_step_closes(tmp_path):
    warehouse = Warehouse(tmp_path / "omniloyal.duckdb")
    with warehouse.build("run1") as con:
        # As marts/customer_value.py writes it: from a data frame, no run_model.
        con.execute(
            "create table marts.customer_value as select 'C1' as customer_id, 0.5 as probability_alive, "
            "1.0 as expected_purchases_12m, 20.0 as expected_average_value, 20.0 as predicted_value_12m"
        )
        con.execute("create table marts.scratch as select 1 as x")  # undocumented: left alone
    built = comments(warehouse.build_path("run1"), "marts.customer_value")
    documented = {
        c.name: c.description for c in catalog.documented()["marts.customer_value"].columns
    }
    assert built == documented
    assert comments(warehouse.build_path("run1"), "marts.scratch") == {"x": None}


def test_a_step_that_fails_leaves_its_tables_alone(tmp_path):
    warehouse = Warehouse(tmp_path / "omniloyal.duckdb")
    with pytest.raises(RuntimeError), warehouse.build("run1") as con:
        con.execute("create table marts.customer_value as select 'C1' as customer_id")
        raise RuntimeError("the step failed")
    assert comments(warehouse.build_path("run1"), "marts.customer_value") == {"customer_id": None}


def test_descriptions_with_commas_are_read_whole():
    # Unquoted in a YAML flow mapping, "web, app, store or callcenter" was read as "web".
    assert catalog.documented()["identity.source_records"].columns[0].description == (
        "web, app, store or callcenter"
    )
    assert {
        c.name: c.description for c in catalog.documented()["staging.callcenter_contacts"].columns
    }["csat"] == "satisfaction 1-5, or null"


def test_an_unquoted_comma_in_a_description_is_refused(tmp_path, monkeypatch):
    schemas = tmp_path / "schemas"
    (schemas / "warehouse").mkdir(parents=True)
    (schemas / "warehouse" / "core.yaml").write_text(
        "schema: core\ntables:\n  t:\n    description: x\n    columns:\n"
        "      source: {type: varchar, description: web, app or store}\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(catalog, "SCHEMAS_DIR", schemas)
    catalog.documented.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"^core.yaml: t.source: unknown keys app or store "):
            catalog.documented()
    finally:
        catalog.documented.cache_clear()
