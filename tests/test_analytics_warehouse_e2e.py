"""The published analytics warehouse of a whole run: no personal column, no personal value, and
the same counts and joins as the main warehouse."""

import stat

import duckdb
import pytest
from test_end_to_end import workspace  # noqa: F401  (the built workspace fixture, reused)

from assets.shared.catalog import personal_columns
from assets.shared.pseudonyms import pseudonym

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def both(workspace):  # noqa: F811
    """One connection: the published main file as `main_file`, the analytics file as `analytics`."""
    folder = workspace / "warehouse"
    con = duckdb.connect()
    con.execute(f"attach '{folder / 'omniloyal.duckdb'}' as main_file (read_only)")
    con.execute(f"attach '{folder / 'omniloyal_analytics.duckdb'}' as analytics (read_only)")
    yield con
    con.close()


def one(con, sql: str):
    return con.execute(sql).fetchall()[0][0]


def test_no_column_flagged_personal_reaches_the_analytics_file(both):
    tables = both.execute(
        "select schema_name || '.' || table_name from duckdb_tables() where database_name = 'analytics'"
    ).fetchall()
    schemas = {table.split(".")[0] for (table,) in tables}
    assert schemas == {"staging", "identity", "core", "loyalty", "marts", "quality"}
    hashed = 0
    for (table,) in tables:
        schema, name = table.split(".")
        columns = {
            c
            for (c,) in both.execute(
                "select column_name from duckdb_columns() where database_name = 'analytics' "
                "and schema_name = ? and table_name = ?",
                [schema, name],
            ).fetchall()
        }
        assert not columns & personal_columns(table), table
        hashed += len({c + "_hash" for c in personal_columns(table)} & columns)
    assert hashed > 20
    assert one(both, "select count(*) from analytics.core.customers") == one(
        both, "select count(*) from main_file.core.customers"
    )


def test_no_personal_value_of_the_customers_is_in_any_text_column(both):
    both.execute(
        """create temp table personal as
        select distinct v from main_file.core.customers,
            unnest([email, phone_e164, street, postcode, first_name || ' ' || last_name]) as t(v)
        where v is not null"""
    )
    assert one(both, "select count(*) from personal") > 1000
    text_columns = both.execute(
        "select schema_name, table_name, column_name from duckdb_columns() "
        "where database_name = 'analytics' and data_type = 'VARCHAR'"
    ).fetchall()
    assert len(text_columns) > 100
    for schema, table, column in text_columns:
        found = one(
            both,
            f'select count(*) from analytics.{schema}.{table} where "{column}" in (select v from personal)',
        )
        assert found == 0, f"{schema}.{table}.{column}"


def test_counts_and_joins_agree_with_the_main_file(both, workspace):  # noqa: F811
    for main_sql, analytics_sql in [
        (
            "select count(distinct customer_id) from main_file.core.customers",
            "select count(distinct customer_id) from analytics.core.customers",
        ),
        (
            "select count(distinct email) from main_file.core.customers",
            "select count(distinct email_hash) from analytics.core.customers",
        ),
        (  # profiles to the web accounts carrying their e-mail
            "select count(*) from main_file.core.customers c join main_file.staging.web_customers w using (email)",
            "select count(*) from analytics.core.customers c join analytics.staging.web_customers w using (email_hash)",
        ),
        (
            "select sum(points_balance) from main_file.loyalty.balances join main_file.core.customers using (customer_id) where email is not null",
            "select sum(points_balance) from analytics.loyalty.balances join analytics.core.customers using (customer_id) where email_hash is not null",
        ),
    ]:
        assert one(both, main_sql) == one(both, analytics_sql) > 0, analytics_sql
    salt_file = workspace / "warehouse" / ".pseudonym_salt"
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    salt = salt_file.read_text().strip()
    customer, email = both.execute(
        "select customer_id, email from main_file.core.customers where email is not null order by customer_id limit 1"
    ).fetchall()[0]
    assert one(
        both,
        f"select email_hash from analytics.core.customers where customer_id = '{customer}'",
    ) == pseudonym(email, salt)
    assert (
        salt.encode() not in (workspace / "warehouse" / "omniloyal_analytics.duckdb").read_bytes()
    )
