"""core.customer_records (one person's records beside their profile) and
core.customers.customer_since (when the person joined), on hand-built staging records.

Each expected value is worked out in the comments from the rows below.
"""

from datetime import date, datetime

import pytest

from assets.ingest.contract import source_priority
from assets.shared.catalog import documented_tables, personal_columns
from assets.shared.warehouse import connect, run_model

AS_OF = date(2026, 3, 1)

COLUMNS = {
    "source": "varchar",
    "source_record_id": "varchar",
    "first_name": "varchar",
    "last_name": "varchar",
    "email": "varchar",
    "phone_e164": "varchar",
    "birth_on": "date",
    "street": "varchar",
    "city": "varchar",
    "postcode": "varchar",
    "country": "varchar",
    "registered_at": "timestamp",
    "marketing_opt_in": "boolean",
    "push_opt_in": "boolean",
    "consent_stated_at": "timestamp",
    "delivered_on": "date",
    "source_file": "varchar",
}
TABLE_OF = {
    "web": "web_customers",
    "app": "app_users",
    "store": "store_members",
    "callcenter": "callcenter_contacts",
}


def record(customer, source, record_id, registered, delivered, **values):
    row = dict.fromkeys(COLUMNS)
    row.update(
        source=source,
        source_record_id=record_id,
        registered_at=registered,
        delivered_on=delivered,
        source_file=f"{source}_{delivered.replace('-', '')}.csv",
        **values,
    )
    return customer, row


RECORDS = [
    # P1: called the call center in 2022, then took a store card (2023-05-05) and a web
    # account (2024-01-01). customer_since = 2023-05-05, the store card: the earlier call is
    # no joining. first_registered_at still counts the call: 2022-12-01 10:00.
    record(
        "P1",
        "callcenter",
        "K1",
        "2022-12-01 10:00:00",
        "2022-12-02",
        first_name="Bob",
        last_name="Smith",
    ),
    record(
        "P1",
        "store",
        "S1",
        "2023-05-05 00:00:00",
        "2026-02-01",
        first_name="Robert",
        last_name="Smith",
        email=None,
        phone_e164="+447700900002",
        postcode="YO1 1AA",
        street="2 Low Rd",
        city="York",
        country="GB",
    ),
    record(
        "P1",
        "web",
        "W1",
        "2024-01-01 08:30:00",
        "2026-01-10",
        first_name="Robert",
        last_name="Smith",
        email="rob@x.com",
        phone_e164="+447700900001",
        marketing_opt_in=True,
        consent_stated_at="2026-01-10 00:00:00",
    ),
    # P2: known from two calls only: customer_since is the first call's day, 2025-01-15.
    record("P2", "callcenter", "K2", "2025-06-01 09:00:00", "2025-06-02", first_name="Ann"),
    record("P2", "callcenter", "K3", "2025-01-15 23:59:00", "2025-01-16", first_name="Ann"),
    # P3: an app user who signed up late in the evening of 2025-12-31 (UTC): 2025-12-31.
    record("P3", "app", "A3", "2025-12-31 23:30:00", "2026-01-02", first_name="Cy"),
]


@pytest.fixture(scope="module")
def warehouse():
    con = connect(":memory:", {"as_of": AS_OF, "source_priority": list(source_priority())})
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    for table in TABLE_OF.values():
        con.execute(f"create table staging.{table} ({columns})")
    con.execute(
        "create table identity.source_records (source varchar, source_record_id varchar, "
        "customer_id varchar, id_assigned_on date, records_in_customer bigint)"
    )
    records_of = {}
    for customer, _ in RECORDS:
        records_of[customer] = records_of.get(customer, 0) + 1
    for customer, row in RECORDS:
        con.execute(
            f"insert into staging.{TABLE_OF[row['source']]} by name select "
            + ", ".join(f"?::{kind} as {name}" for name, kind in COLUMNS.items()),
            list(row.values()),
        )
        # The ids were assigned by the runs of 2026-02-01 (P1) and 2026-03-01 (the others).
        assigned = date(2026, 2, 1) if customer == "P1" else AS_OF
        con.execute(
            "insert into identity.source_records values (?, ?, ?, ?, ?)",
            [row["source"], row["source_record_id"], customer, assigned, records_of[customer]],
        )
    run_model(con, "core/customers")
    run_model(con, "core/customer_records")
    yield con
    con.close()


def rows(con, sql, params=()):
    result = con.execute(sql, params)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row)) for row in result.fetchall()]


def test_customer_since_is_the_first_registration_not_the_id_assignment(warehouse):
    since = dict(
        warehouse.execute(
            "select customer_id, customer_since from core.customers order by 1"
        ).fetchall()
    )
    assert since == {"P1": date(2023, 5, 5), "P2": date(2025, 1, 15), "P3": date(2025, 12, 31)}
    (first_registered,) = warehouse.execute(
        "select first_registered_at from core.customers where customer_id = 'P1'"
    ).fetchall()[0]
    assert first_registered == datetime(2022, 12, 1, 10, 0)


def test_one_customer_shows_the_profile_beside_every_record_and_its_source(warehouse):
    p1 = rows(warehouse, "select * from core.customer_records where customer_id = ?", ["P1"])
    # Every record of P1, earliest registered first, each with its source and own values.
    assert [(r["source"], r["source_record_id"]) for r in p1] == [
        ("callcenter", "K1"),
        ("store", "S1"),
        ("web", "W1"),
    ]
    assert [r["first_name"] for r in p1] == ["Bob", "Robert", "Robert"]
    assert [r["email"] for r in p1] == [None, None, "rob@x.com"]
    assert [r["source_file"] for r in p1] == [
        "callcenter_20221202.csv",
        "store_20260201.csv",
        "web_20260110.csv",
    ]
    # The profile's choices, on every row: Robert (2 of 3 records), the freshest phone (the
    # store card, delivered 2026-02-01, after the web account's 2026-01-10), the only e-mail,
    # the only address (the store card's), consent from the web account's statement.
    for row in p1:
        assert row["profile_first_name"] == "Robert"
        assert row["profile_last_name"] == "Smith"
        assert row["profile_email"] == "rob@x.com"
        assert row["profile_phone_e164"] == "+447700900002"
        assert (row["profile_street"], row["profile_postcode"]) == ("2 Low Rd", "YO1 1AA")
        assert row["has_email_consent"] is True and row["has_push_consent"] is False
        assert row["customer_since"] == date(2023, 5, 5)
        assert row["id_assigned_on"] == date(2026, 2, 1)
        assert row["records_in_customer"] == 3


def test_every_record_appears_once_with_its_customer(warehouse):
    ((records, distinct, customers),) = warehouse.execute(
        "select count(*), count(distinct (source, source_record_id)), count(distinct customer_id) "
        "from core.customer_records"
    ).fetchall()
    assert (records, distinct, customers) == (len(RECORDS), len(RECORDS), 3)
    assert warehouse.execute(
        "select customer_id, source_record_id from core.customer_records "
        "where customer_id = 'P2' order by registered_at"
    ).fetchall() == [("P2", "K3"), ("P2", "K2")]


def test_columns_match_the_catalog_and_carry_its_comments(warehouse):
    built = warehouse.execute(
        "select column_name, comment from duckdb_columns() "
        "where schema_name = 'core' and table_name = 'customer_records' order by column_index"
    ).fetchall()
    documented = documented_tables()["core.customer_records"]
    assert [name for name, _ in built] == [c.name for c in documented]
    # Every column is commented from schemas/, personal ones marked as such.
    comments = dict(built)
    assert all(comments.values()), [name for name, comment in built if not comment]
    assert comments["profile_email"] == "the profile's e-mail [personal data]"
    assert comments["source"] == "web, app, store or callcenter"
    assert {"email", "profile_email", "birth_on", "profile_postcode"} <= personal_columns(
        "core.customer_records"
    )
    (since_comment,) = warehouse.execute(
        "select comment from duckdb_columns() where schema_name = 'core' "
        "and table_name = 'customers' and column_name = 'customer_since'"
    ).fetchall()[0]
    assert since_comment.startswith("when the person joined")
