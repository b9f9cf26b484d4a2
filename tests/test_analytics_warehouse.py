"""The analytics warehouse on a tiny hand-built warehouse: personal columns hashed by the catalog's
pii flags, raw left out, hashes stable and joinable, undocumented columns refused, leaks caught."""

import hashlib
from pathlib import Path

import duckdb
import pytest

from assets.privacy.analytics import PrivacyError, build_analytics, check_analytics
from assets.shared.warehouse import connect

SALT = "a1" * 32
OTHER_SALT = "b2" * 32


def sha(salt: str, value: str) -> str:
    return hashlib.sha256((salt + value).encode()).hexdigest()


@pytest.fixture
def build(tmp_path) -> duckdb.DuckDBPyConnection:
    """Two customers; Ann's e-mail in core and, as delivered, in staging and raw."""
    con = connect(tmp_path / "build.duckdb")
    con.execute(
        """create table core.customers as select * from (values
            ('C1', 'Ann', 'Chester', 'ann@example.com', date '1980-02-29', 'Chester'),
            ('C2', 'Bob', 'Stone', null, null, 'Leeds')
        ) as t(customer_id, first_name, last_name, email, birth_on, city)"""
    )
    con.execute(
        """create table staging.web_customers as select * from (values
            ('web', 'W1', ' ANN@Example.com', date '1980-02-29', 'Chester'),
            ('web', 'W2', 'ann@example.com', null, 'York')
        ) as t(source, source_record_id, email, birth_on, city)"""
    )
    con.execute(
        """create table raw.web_customers as select * from (values
            ('W1', 'ANN@Example.com', 'Ann')) as t(account_id, email, first_name)"""
    )
    yield con
    con.close()


def analytics(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_personal_columns_are_hashed_by_the_catalog_flags_and_raw_is_left_out(build, tmp_path):
    path = tmp_path / "analytics.duckdb"
    tables = build_analytics(build, path, SALT)
    assert {spec.table: spec.hashed for spec in tables} == {
        "core.customers": ["first_name", "last_name", "email", "birth_on"],
        "staging.web_customers": ["email", "birth_on"],
    }
    assert analytics(path, "select schema_name, table_name from duckdb_tables() order by all") == [
        ("core", "customers"),
        ("staging", "web_customers"),
    ]
    columns = analytics(
        path,
        "select column_name, comment from duckdb_columns() where table_name = 'customers' order by column_index",
    )
    assert [name for name, _ in columns] == [
        "customer_id",
        "first_name_hash",
        "last_name_hash",
        "email_hash",
        "birth_on_hash",
        "city",
    ]
    comments = dict(columns)
    assert comments["email_hash"].startswith("[pseudonym] salted SHA-256 of email")
    assert comments["customer_id"] == "the person (identity.source_records)"
    assert analytics(path, "select * from core.customers order by customer_id") == [
        (
            "C1",
            sha(SALT, "ann"),
            sha(SALT, "chester"),
            sha(SALT, "ann@example.com"),
            sha(SALT, "1980-02-29"),
            "Chester",
        ),
        ("C2", sha(SALT, "bob"), sha(SALT, "stone"), None, None, "Leeds"),
    ]
    assert SALT.encode() not in path.read_bytes()  # the salt is nowhere in the file
    assert check_analytics(build, path, SALT) == []


def test_the_same_value_hashes_alike_across_tables_and_builds_and_not_across_salts(build, tmp_path):
    first, again, other = (tmp_path / f"{n}.duckdb" for n in ("first", "again", "other"))
    build_analytics(build, first, SALT)
    build_analytics(build, again, SALT)
    build_analytics(build, other, OTHER_SALT)
    joined = analytics(
        first,
        "select c.customer_id, count(*), count(distinct w.email_hash) from core.customers c "
        "join staging.web_customers w using (email_hash) group by all",
    )
    assert joined == [("C1", 2, 1)]  # ' ANN@Example.com' and 'ann@example.com' are one e-mail
    select = "select * from staging.web_customers order by source_record_id"
    assert analytics(first, select) == analytics(again, select)
    assert analytics(first, select)[0][2] == sha(SALT, "ann@example.com")
    assert analytics(other, select)[0][2] == sha(OTHER_SALT, "ann@example.com")
    assert analytics(other, select)[0][2] != analytics(first, select)[0][2]


def test_an_undocumented_column_fails_the_build_in_one_line_and_writes_nothing(build, tmp_path):
    build.execute("alter table core.customers add column nickname varchar")
    path = tmp_path / "analytics.duckdb"
    with pytest.raises(PrivacyError) as err:
        build_analytics(build, path, SALT)
    assert str(err.value) == (
        "core.customers.nickname: column not documented in schemas/warehouse/, so it is not known "
        "whether it is personal; document it (with its pii flag) to build the analytics warehouse"
    )
    assert not path.exists()


def test_an_undocumented_table_fails_the_build(build, tmp_path):
    build.execute("create table marts.scratch as select 'x' as note")
    with pytest.raises(PrivacyError, match=r"^marts\.scratch: table not documented"):
        build_analytics(build, tmp_path / "analytics.duckdb", SALT)


def tampered(build, tmp_path, sql: str) -> list[str]:
    path = tmp_path / "analytics.duckdb"
    build_analytics(build, path, SALT)
    con = duckdb.connect(str(path))
    con.execute(sql)
    con.close()
    return check_analytics(build, path, SALT)


def test_the_check_finds_a_personal_value_copied_into_a_public_column(build, tmp_path):
    # The raw spelling: only raw holds it, so it is caught though raw is not in the file.
    problems = tampered(
        build,
        tmp_path,
        "update core.customers set city = 'ANN@Example.com' where customer_id = 'C2'",
    )
    assert problems == [
        "core.customers.city: 1 distinct values equal to personal values of the warehouse"
    ]


def test_the_check_excuses_a_personal_text_that_is_also_public_data(build, tmp_path):
    # 'Chester' is C1's last name and, as documented non-personal data, a city.
    assert tampered(build, tmp_path, "update core.customers set city = 'Chester'") == []


def test_the_check_finds_an_unhashed_personal_column_and_a_bad_hash(build, tmp_path):
    problems = tampered(
        build, tmp_path, "alter table core.customers add column email varchar default 'x'"
    )
    assert problems == ["core.customers.email: personal column present unhashed"]
    problems = tampered(build, tmp_path, "update staging.web_customers set email_hash = 'Ann'")
    assert problems == [
        "staging.web_customers.email_hash: 2 values are not SHA-256 hashes",
        "staging.web_customers.email_hash: 1 distinct values equal to personal values of the warehouse",
    ]


def test_the_check_finds_a_raw_table_and_the_salt(build, tmp_path):
    problems = tampered(
        build,
        tmp_path,
        f"create schema raw; create table raw.web_customers as select 1 as n; "
        f"update core.customers set city = 'salt: {SALT}'",
    )
    assert problems == ["raw.web_customers: in the analytics file but not an analytics table"]
    problems = tampered(build, tmp_path, f"update core.customers set city = 'salt: {SALT}'")
    assert problems == ["core.customers.city: holds the pseudonym salt"]


def test_working_steps_are_left_out_and_flagged_when_found(build, tmp_path):
    # identity.match_input is documented `for_analysts: false`: the matching model's input.
    build.execute(
        "create table identity.match_input as select 'web:W1' as unique_id, 'ann@example.com' as email_key"
    )
    path = tmp_path / "analytics.duckdb"
    tables = build_analytics(build, path, SALT)
    assert "identity.match_input" not in {spec.table for spec in tables}
    assert ("identity", "match_input") not in analytics(
        path, "select schema_name, table_name from duckdb_tables()"
    )
    assert check_analytics(build, path, SALT) == []
    # A working step that reached the file anyway is a problem of the file.
    con = duckdb.connect(str(path))
    con.execute("create schema identity")
    con.execute("create table identity.match_input as select 'web:W1' as unique_id")
    con.close()
    assert check_analytics(build, path, SALT) == [
        "identity.match_input: in the analytics file but not an analytics table"
    ]


def test_mostly_distinct_text_is_written_with_zstd_and_reads_back_the_same(build, tmp_path):
    """20,000 customers: ids and e-mails are distinct (ZSTD, for them and their pseudonyms),
    cities repeat (DuckDB's default choice); every value reads back as built."""
    build.execute(
        """create or replace table core.customers as
        select 'C' || i as customer_id, 'Ann' as first_name, 'Lee' as last_name,
               'p' || i || '@example.com' as email, null::date as birth_on,
               ['Leeds', 'York', 'Ely'][1 + i % 3] as city
        from range(20000) t(i)"""
    )
    path = tmp_path / "analytics.duckdb"
    build_analytics(build, path, SALT)
    compression = dict(
        analytics(
            path,
            "select column_name, string_agg(distinct compression order by compression) "
            "from pragma_storage_info('core.customers') where segment_type = 'VARCHAR' group by all",
        )
    )
    assert compression["customer_id"] == "ZSTD"
    assert compression["email_hash"] == "ZSTD"
    assert "ZSTD" not in compression["city"]
    assert "ZSTD" not in compression["first_name_hash"]
    assert analytics(
        path,
        "select count(*), count(distinct customer_id), count(distinct email_hash), "
        "min(email_hash), max(city) from core.customers",
    ) == [
        (
            20000,
            20000,
            20000,
            min(sha(SALT, f"p{i}@example.com") for i in range(20000)),
            "York",
        )
    ]
    assert check_analytics(build, path, SALT) == []
