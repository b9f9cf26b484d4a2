"""Survivorship in core.customers, on hand-built staging records.

Each expected value is worked out in the comments from the rows below.
"""

from datetime import date, datetime

import pytest

from assets.ingest.contract import source_priority
from assets.shared.warehouse import connect, run_model

COLUMNS = (
    "source, source_record_id, first_name, last_name, email, phone_e164, birth_on, street, city, postcode, "
    "country, registered_at, marketing_opt_in, push_opt_in, consent_stated_at, delivered_on"
)
TYPES = (
    "varchar, varchar, varchar, varchar, varchar, varchar, date, varchar, varchar, varchar, "
    "varchar, timestamp, boolean, boolean, timestamp, date"
)

# customer, then the staging columns above
RECORDS = [
    # C1: one person known to all four sources.
    (
        "C1",
        "web",
        "W1",
        "Robert",
        "Smith",
        "rob@x.com",
        "+447700900001",
        "1980-01-02",
        "1 High St",
        "Leeds",
        "LS1 1AA",
        "GB",
        "2024-01-01 00:00:00",
        True,
        None,
        "2026-01-10 00:00:00",
        "2026-01-10",
    ),
    (
        "C1",
        "app",
        "A1",
        "Bob",
        "Smith",
        "bob@y.com",
        None,
        None,
        None,
        None,
        None,
        None,
        "2025-03-01 00:00:00",
        False,
        True,
        "2026-02-01 00:00:00",
        "2026-02-01",
    ),
    (
        "C1",
        "store",
        "S1",
        "Robert",
        "Smyth",
        None,
        "+447700900002",
        "1980-01-02",
        "2 Low Rd",
        "York",
        "YO1 1AA",
        "GB",
        "2023-05-05 00:00:00",
        None,
        None,
        None,
        "2026-02-01",
    ),
    (
        "C1",
        "callcenter",
        "K1",
        "Bob",
        "Smith",
        None,
        "+447700900003",
        None,
        None,
        None,
        None,
        None,
        "2026-02-01 09:00:00",
        None,
        None,
        None,
        "2026-02-01",
    ),
    # C2: a single store card without consent statements.
    (
        "C2",
        "store",
        "S2",
        "Ann",
        "Lee",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        "2025-06-01 00:00:00",
        None,
        None,
        None,
        "2025-06-02",
    ),
    # C3: moved; the newer record has only a postcode.
    (
        "C3",
        "web",
        "W3",
        "Cy",
        "Fox",
        None,
        None,
        None,
        "5 Elm St",
        "Hull",
        "HU1 1AA",
        "GB",
        "2024-02-02 00:00:00",
        None,
        None,
        None,
        "2026-01-01",
    ),
    (
        "C3",
        "store",
        "S3",
        "Cy",
        "Fox",
        None,
        None,
        None,
        None,
        None,
        "HU2 2BB",
        None,
        "2025-02-02 00:00:00",
        None,
        None,
        None,
        "2026-02-01",
    ),
]


@pytest.fixture(scope="module")
def customers():
    con = connect(
        ":memory:", {"as_of": date(2026, 3, 1), "source_priority": list(source_priority())}
    )
    for table in ("web_customers", "app_users", "store_members", "callcenter_contacts"):
        columns = ", ".join(
            f"{name} {kind}" for name, kind in zip(COLUMNS.split(", "), TYPES.split(", "))
        )
        con.execute(f"create table staging.{table} ({columns})")
    con.execute(
        "create table identity.source_records (source varchar, source_record_id varchar, customer_id varchar)"
    )
    table_of = {
        "web": "web_customers",
        "app": "app_users",
        "store": "store_members",
        "callcenter": "callcenter_contacts",
    }
    for customer, *record in RECORDS:
        con.execute(
            f"insert into staging.{table_of[record[0]]} values ({', '.join('?' * len(record))})",
            record,
        )
        con.execute(
            "insert into identity.source_records values (?, ?, ?)", [record[0], record[1], customer]
        )
    run_model(con, "core/customers")
    names = [d[0] for d in con.execute("select * from core.customers").description]
    rows = {
        row[0]: dict(zip(names, row))
        for row in con.execute("select * from core.customers").fetchall()
    }
    con.close()
    return rows


def test_sources_rank_by_the_contracts_profile_priority():
    assert source_priority() == ("web", "app", "store", "callcenter")


def test_names_take_the_most_used_spelling(customers):
    c1 = customers["C1"]
    # Robert (W1, S1) and Bob (A1, K1) are used twice each: the tie goes to the spelling of
    # the freshest record. A1, S1 and K1 were all delivered on 2026-02-01; the app ranks
    # above the store and the call center, so A1 is the freshest: Bob.
    assert (c1["first_name"], c1["first_name_source"], c1["first_name_updated_on"]) == (
        "Bob",
        "app",
        date(2026, 2, 1),
    )
    # Smith on three records beats Smyth on one; its freshest record is again A1.
    assert (c1["last_name"], c1["last_name_source"]) == ("Smith", "app")


def test_contacts_take_the_freshest_value_with_source_priority_for_ties(customers):
    c1 = customers["C1"]
    # Only A1 has the newest e-mail (W1's is older).
    assert (c1["email"], c1["email_source"], c1["email_updated_on"]) == (
        "bob@y.com",
        "app",
        date(2026, 2, 1),
    )
    # S1 and K1 both state a phone on 2026-02-01: the store ranks above the call center.
    assert (c1["phone_e164"], c1["phone_source"], c1["phone_updated_on"]) == (
        "+447700900002",
        "store",
        date(2026, 2, 1),
    )
    assert (c1["birth_on"], c1["birth_on_source"]) == (date(1980, 1, 2), "store")


def test_address_comes_whole_from_one_record(customers):
    c1 = customers["C1"]
    assert (c1["street"], c1["city"], c1["postcode"], c1["country"], c1["address_source"]) == (
        "2 Low Rd",
        "York",
        "YO1 1AA",
        "GB",
        "store",
    )
    # C3's newer record has a postcode and no street: W3's street is not paired with it.
    c3 = customers["C3"]
    assert (
        c3["street"],
        c3["city"],
        c3["postcode"],
        c3["address_source"],
        c3["address_updated_on"],
    ) == (None, None, "HU2 2BB", "store", date(2026, 2, 1))


def test_consent_is_the_latest_statement_per_channel(customers):
    c1 = customers["C1"]
    # W1 opted in on 2026-01-10; A1 opted out on 2026-02-01: the later statement wins.
    assert (c1["has_email_consent"], c1["email_consent_source"], c1["email_consent_stated_at"]) == (
        False,
        "app",
        datetime(2026, 2, 1),
    )
    assert (c1["has_push_consent"], c1["push_consent_source"]) == (True, "app")
    # Never stated: no consent, and no source.
    c2 = customers["C2"]
    assert (c2["has_email_consent"], c2["email_consent_source"], c2["has_push_consent"]) == (
        False,
        None,
        False,
    )


def test_first_and_last_seen_and_records_per_source(customers):
    c1 = customers["C1"]
    assert c1["first_registered_at"] == datetime(2023, 5, 5)
    assert (c1["first_seen_on"], c1["last_seen_on"]) == (date(2023, 5, 5), date(2026, 2, 1))
    assert (
        c1["records_total"],
        c1["web_records"],
        c1["app_records"],
        c1["store_records"],
        c1["callcenter_records"],
    ) == (4, 1, 1, 1, 1)
    c2 = customers["C2"]
    assert (c2["first_seen_on"], c2["last_seen_on"], c2["records_total"], c2["store_records"]) == (
        date(2025, 6, 1),
        date(2025, 6, 2),
        1,
        1,
    )
    assert sorted(customers) == ["C1", "C2", "C3"]
