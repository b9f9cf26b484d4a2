"""Staging models: the later delivery of a key wins, fields are standardized and flagged."""

import re
from datetime import date

from assets.ingest.contract import source_files
from assets.ingest.deliveries import ingest_inbox
from assets.shared.warehouse import MACROS_FILE, connect, model_sql, run_model
from assets.staging.standardizers import register_udfs

HEADER = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in\n"


def test_later_delivery_wins_and_fields_are_standardized(tmp_path):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "customers_20260101.csv").write_text(
        HEADER
        + "W1,Old@Example.com,bob,SMITH,07911 123456,1980-02-03,12 High Street,london,sw1a1aa,gb,2025-01-01T00:00:00Z,true\n"
        + "W2,x@y.com,Ann,Lee,12345,2090-01-01,,,,,2025-01-01T00:00:00Z,false\n"
    )
    # The later file changes W1's e-mail and consent; W2 is not in it and stays.
    (tmp_path / "web" / "customers_20260102.csv").write_text(
        HEADER
        + "W1, New@Example.com ,bob,SMITH,+44 7911 123456,1980-02-03,12 High St.,london,SW1A 1AA,GB,2025-01-01T00:00:00Z,false\n"
    )
    con = connect(":memory:", {"as_of": date(2026, 1, 31)})
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    ingest_inbox(con, tmp_path)
    assert run_model(con, "staging/web_customers") == 2
    rows = con.execute(
        "select source_record_id, first_name, last_name, email, phone_e164, has_invalid_phone, birth_on, "
        "has_implausible_birth_date, street_key, postcode, marketing_opt_in, delivered_on "
        "from staging.web_customers order by 1"
    ).fetchall()
    assert rows == [
        (
            "W1",
            "Bob",
            "Smith",
            "new@example.com",
            "+447911123456",
            False,
            date(1980, 2, 3),
            False,
            "12 high st",
            "SW1A 1AA",
            False,
            date(2026, 1, 2),
        ),
        (
            "W2",
            "Ann",
            "Lee",
            "x@y.com",
            None,
            True,
            None,
            True,
            None,
            None,
            False,
            date(2026, 1, 1),
        ),
    ]
    # History stays in raw: both deliveries of W1.
    assert (
        con.execute("select count(*) from raw.web_customers where account_id = 'W1'").fetchall()[0][
            0
        ]
        == 2
    )


def test_every_staging_model_keeps_the_latest_delivery_of_the_contracts_key():
    # The key is typed once per model, in its latest_of call: it must be the contract's.
    for spec in source_files():
        sql = model_sql(f"staging/{spec.table}")
        calls = re.findall(r"latest_of\('raw\.(\w+)', \[([^\]]*)\]\)", sql)
        assert [
            (table, tuple(k.strip(" '") for k in keys.split(","))) for table, keys in calls
        ] == [(spec.table, spec.key)]


def test_latest_of_keeps_the_last_delivery_then_file_then_line_of_each_compound_key():
    con = connect(":memory:", {"as_of": date(2026, 1, 31)})
    con.execute(MACROS_FILE.read_text())
    con.execute(
        "create table raw.t as select * from (values "
        "('a', 1, 'old', date '2026-01-01', 'f1', 2), ('a', 1, 'new', date '2026-01-02', 'f0', 1), "
        "('a', 2, 'only', date '2026-01-01', 'f1', 1), "
        "('b', 1, 'first file', date '2026-01-01', 'f1', 9), ('b', 1, 'later file', date '2026-01-01', 'f2', 1), "
        "('c', 1, 'first line', date '2026-01-01', 'f1', 1), ('c', 1, 'later line', date '2026-01-01', 'f1', 2)"
        ") v(k1, k2, value, _delivered_on, _file, _line)"
    )
    assert con.execute(
        "select k1, k2, value from latest_of('raw.t', ['k1', 'k2']) order by all"
    ).fetchall() == [
        ("a", 1, "new"),
        ("a", 2, "only"),
        ("b", 1, "later file"),
        ("c", 1, "later line"),
    ]
    # The same columns in the same order as the raw table.
    assert [d[0] for d in con.execute("select * from latest_of('raw.t', ['k1'])").description] == [
        "k1",
        "k2",
        "value",
        "_delivered_on",
        "_file",
        "_line",
    ]


def test_built_tables_carry_their_documentation_as_duckdb_comments(tmp_path):
    from assets.shared.catalog import documented

    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "customers_20260101.csv").write_text(
        HEADER + "W1,a@b.com,Ann,Lee,,,,,,,2025-01-01T00:00:00Z,true\n"
    )
    con = connect(":memory:", {"as_of": date(2026, 1, 31)})
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    ingest_inbox(con, tmp_path)
    run_model(con, "staging/web_customers")
    for table in ("staging.web_customers", "raw.web_customers", "raw.deliveries"):
        schema, name = table.split(".")
        doc = documented()[table]
        assert con.execute(
            "select comment from duckdb_tables() where schema_name = ? and table_name = ?",
            [schema, name],
        ).fetchall() == [(doc.description,)]
        comments = dict(
            con.execute(
                "select column_name, comment from duckdb_columns() where schema_name = ? and table_name = ?",
                [schema, name],
            ).fetchall()
        )
        assert comments == {
            c.name: c.description + (" [personal data]" if c.pii else "") for c in doc.columns
        }
    assert documented()["staging.web_customers"].description == "Web accounts."
    assert comments["file"] == "path relative to the inbox"
