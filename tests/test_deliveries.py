"""Ingestion: every kind of bad row, bad field and bad file, decoding, idempotency."""

import gzip
import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from assets.ingest.deliveries import DeliveryError, ingest_inbox
from assets.shared.warehouse import MACROS_FILE, connect, run_model
from assets.staging.standardizers import register_udfs

ORDERS_HEADER = "order_id,account_id,ordered_at,total_amount,currency,status"
EVENT = '{{"event_id":"{}","user_id":"U1","type":"purchase","ts":1700000000000,"amount":9.99}}'


def write(inbox: Path, name: str, content: str | bytes) -> Path:
    path = inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


@pytest.fixture
def con():
    con = connect(":memory:")
    yield con
    con.close()


def quarantine(con) -> list[tuple]:
    return con.execute(
        "select file, line, reason, raw from quality.quarantine order by file, line"
    ).fetchall()


def field_issues(con) -> list[tuple]:
    return con.execute(
        "select source, entity, file, line, column_name, reason, masked_value from quality.field_issues "
        "order by file, line, column_name"
    ).fetchall()


def test_bad_rows_are_quarantined_with_line_and_reason_and_good_rows_load(tmp_path, con):
    write(
        tmp_path,
        "web/orders_20250306.csv",
        "\r\n".join(
            [
                ORDERS_HEADER,
                "O1,A1,2025-03-04T10:15:00Z,12.50,GBP,completed",
                "O2,A1,2025-03-05T10:15:00Z,-3,GBP,completed",
                "O3,A2,yesterday,5,GBP,refunded",
                "O4,A2,2025-03-05T10:15:00Z,5,GBP",
                "O5,,2025-03-05T10:15:00Z,5,GBP,completed",
                'O6,A3,2025-03-06T00:00:00+01:00,"1,000.00",GBP,cancelled',
                'O7,A3,2025-03-06T00:00:00+01:00,7,GBP,"can\ncelled"',
                "O8,A3,2025-03-06T00:00:00+01:00,7,GBP,teleport",
                "O9,A4,2025-03-07T00:00:00+01:00,7,GBP,cancelled",
            ]
        )
        + "\r\n",
    )
    result = ingest_inbox(con, tmp_path, max_bad_share=1.0)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined, result.field_issues) == (
        9,
        2,
        7,
        0,
    )
    assert quarantine(con) == [
        (
            "web/orders_20250306.csv",
            3,
            "total_amount is negative",
            "O2,A1,2025-03-05T10:15:00Z,-3,GBP,completed",
        ),
        (
            "web/orders_20250306.csv",
            4,
            "ordered_at is not a timestamp as iso8601",
            "O3,A2,yesterday,5,GBP,refunded",
        ),
        (
            "web/orders_20250306.csv",
            5,
            "expected 6 fields, found 5",
            "O4,A2,2025-03-05T10:15:00Z,5,GBP",
        ),
        (
            "web/orders_20250306.csv",
            6,
            "missing required account_id",
            "O5,,2025-03-05T10:15:00Z,5,GBP,completed",
        ),
        (
            "web/orders_20250306.csv",
            7,
            "total_amount is not a number",
            'O6,A3,2025-03-06T00:00:00+01:00,"1,000.00",GBP,cancelled',
        ),
        # status is optional but not personal: an order whose status is unknown must not earn
        # points as if completed, so the row is quarantined rather than the field emptied.
        (
            "web/orders_20250306.csv",
            8,
            "unknown status (allowed: completed, refunded, cancelled)",
            'O7,A3,2025-03-06T00:00:00+01:00,7,GBP,"can\ncelled"',
        ),
        # The embedded newline above makes O8 start on line 10.
        (
            "web/orders_20250306.csv",
            10,
            "unknown status (allowed: completed, refunded, cancelled)",
            "O8,A3,2025-03-06T00:00:00+01:00,7,GBP,teleport",
        ),
    ]
    assert field_issues(con) == []
    loaded = con.execute(
        "select order_id, ordered_at::varchar, total_amount::varchar, _line from raw.web_orders order by 1"
    ).fetchall()
    # Offsets are converted to UTC.
    assert loaded == [
        ("O1", "2025-03-04 10:15:00", "12.50", 2),
        ("O9", "2025-03-06 23:00:00", "7.00", 11),
    ]


def test_json_lines_malformed_lines_and_unknown_event_types(tmp_path, con):
    write(
        tmp_path,
        "app/events_20250306.jsonl",
        '{"event_id":"E1","user_id":"U1","type":"purchase","ts":1700000000000,"amount":9.99}\n'
        '{"event_id":"E2","user_id":"U1","type":"teleport","ts":1700000000000}\n'
        "{broken\n"
        "[1, 2]\n"
        "\n"
        '{"event_id":"E3","user_id":"U2","type":"check_in","ts":"abc"}\n'
        '{"event_id":"E4","user_id":"U2","type":"check_in","ts":1700000000000}\n',
    )
    result = ingest_inbox(con, tmp_path, max_bad_share=1.0)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (6, 2, 4)
    assert [(line, reason) for _, line, reason, _ in quarantine(con)] == [
        (2, "unknown type (allowed: purchase, share, review, check_in, redeem)"),
        (3, "malformed JSON line"),
        (4, "JSON line is not an object"),
        (6, "ts is not a timestamp as epoch_ms"),
    ]
    assert con.execute(
        "select event_id, type, ts::varchar, amount::varchar from raw.app_events order by 1"
    ).fetchall() == [
        ("E1", "purchase", "2023-11-14 22:13:20", "9.99"),
        ("E4", "check_in", "2023-11-14 22:13:20", None),
    ]


def test_latin1_and_bom_and_gzip_are_decoded_not_dropped(tmp_path, con):
    header = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in\n"
    write(
        tmp_path,
        "web/customers_20250301.csv",
        (header + "A1,,José,Müller,,,,,,,,\n").encode("latin-1"),
    )
    write(
        tmp_path,
        "web/customers_20250302.csv",
        b"\xef\xbb\xbf" + (header + "A2,,Zoë,Brontë,,,,,,,,true\n").encode("utf-8"),
    )
    (tmp_path / "web/customers_20250303.csv.gz").write_bytes(
        gzip.compress((header + "A3,,Siobhán,Ó Sé,,,,,,,,false\n").encode())
    )
    ingest_inbox(con, tmp_path)
    assert con.execute(
        "select account_id, first_name, last_name, marketing_opt_in from raw.web_customers order by 1"
    ).fetchall() == [
        ("A1", "José", "Müller", None),
        ("A2", "Zoë", "Brontë", True),
        ("A3", "Siobhán", "Ó Sé", False),
    ]


def test_a_warehouse_published_with_the_old_status_column_ingests_without_it(tmp_path, con):
    # raw.deliveries.status was always 'loaded' and is dropped; older warehouses still have it, not null.
    con.execute("create schema if not exists raw")
    con.execute(
        "create table raw.deliveries (delivery_id varchar primary key, file varchar not null, source varchar not null, "
        "entity varchar not null, delivered_on date not null, size_bytes bigint not null, rows_read bigint not null, "
        "rows_loaded bigint not null, rows_quarantined bigint not null, ingested_at timestamp not null, "
        "status varchar not null)"
    )
    con.execute(
        "insert into raw.deliveries values ('x', 'web/orders_20250301.csv', 'web', 'orders', '2025-03-01', 1, 0, 0, 0, now(), 'loaded')"
    )
    write(
        tmp_path,
        "web/orders_20250306.csv",
        ORDERS_HEADER + "\nO1,A1,2025-03-04T10:15:00Z,12.50,GBP,completed\n",
    )
    assert ingest_inbox(con, tmp_path).rows_loaded == 1
    columns = [
        c
        for (c,) in con.execute(
            "select column_name from duckdb_columns() where table_name = 'deliveries'"
        ).fetchall()
    ]
    assert "status" not in columns
    assert con.execute("select file from raw.deliveries order by 1").fetchall() == [
        ("web/orders_20250301.csv",),
        ("web/orders_20250306.csv",),
    ]


def test_a_warehouse_from_before_the_contract_gained_a_column_takes_it_by_name(tmp_path, con):
    # raw.web_orders as published before orders had membership_plan (issue 17): the column is
    # added, empty for the order delivered then, and a new delivery's value lands in it.
    con.execute("create schema if not exists raw")
    con.execute(
        "create table raw.web_orders (order_id varchar, account_id varchar, ordered_at timestamp, "
        "total_amount decimal(18, 2), currency varchar, status varchar, _delivery_id varchar not null, "
        "_file varchar not null, _delivered_on date not null, _line bigint not null)"
    )
    con.execute(
        "insert into raw.web_orders values ('O0', 'A0', '2025-03-01 09:00', 5, 'GBP', 'completed', "
        "'d0', 'web/orders_20250301.csv', '2025-03-01', 2)"
    )
    write(
        tmp_path,
        "web/orders_20250306.csv",
        ORDERS_HEADER
        + ",membership_plan\nO1,A1,2025-03-04T10:15:00Z,12.50,GBP,completed,Plus Monthly\n",
    )
    assert ingest_inbox(con, tmp_path).rows_loaded == 1
    assert con.execute(
        "select order_id, status, membership_plan, _file, _line from raw.web_orders order by 1"
    ).fetchall() == [
        ("O0", "completed", None, "web/orders_20250301.csv", 2),
        ("O1", "completed", "Plus Monthly", "web/orders_20250306.csv", 2),
    ]


def test_rerun_and_redelivered_copy_add_nothing(tmp_path, con):
    write(
        tmp_path,
        "web/orders_20250306.csv",
        ORDERS_HEADER + "\nO1,A1,2025-03-04T10:15:00Z,12.50,GBP,completed\n",
    )
    assert ingest_inbox(con, tmp_path).rows_loaded == 1
    assert ingest_inbox(con, tmp_path).deliveries == []
    shutil.copy(tmp_path / "web/orders_20250306.csv", tmp_path / "web/orders_20250307.csv")
    assert ingest_inbox(con, tmp_path).deliveries == []
    assert con.execute("select count(*) from raw.web_orders").fetchall()[0][0] == 1
    assert con.execute("select count(*) from raw.deliveries").fetchall()[0][0] == 1
    assert con.execute("select file, duplicate_of from raw.duplicate_deliveries").fetchall() == [
        ("web/orders_20250307.csv", "web/orders_20250306.csv")
    ]


def test_a_file_over_the_bad_row_threshold_fails_naming_the_file(tmp_path, con):
    rows = [f"O{i},A1,2025-03-04T10:15:00Z,1,GBP,completed" for i in range(18)] + [
        "X,A1,never,1,GBP,completed"
    ] * 2
    write(tmp_path, "web/orders_20250306.csv", "\n".join([ORDERS_HEADER, *rows]) + "\n")
    with pytest.raises(
        DeliveryError,
        match=r"web/orders_20250306.csv: 2 of 20 rows \(10.0%\) break the contract, above the 5% threshold",
    ):
        ingest_inbox(con, tmp_path, max_bad_share=0.05)


@pytest.mark.parametrize(
    "name, content, message",
    [
        (
            "web/orders_20250306.csv",
            "order_id,ordered_at,total_amount\nO1,2025-01-01T00:00:00Z,1\n",
            "web/orders_20250306.csv: missing required column(s) account_id",
        ),
        (
            "web/orders_20250306.csv.gz",
            b"not gzip at all",
            "web/orders_20250306.csv.gz: not a readable gzip file",
        ),
        (
            "web/orders_20250306.csv",
            b"\x00\x01\x02binary",
            "web/orders_20250306.csv: binary content, not a CSV text file",
        ),
        (
            "web/orders_latest.csv",
            ORDERS_HEADER + "\n",
            "web/orders_latest.csv: file name has no _YYYYMMDD delivery date",
        ),
        (
            "app/users_20250306.jsonl",
            "user_id,email\nU1,a@b.com\n",
            "app/users_20250306.jsonl: not a JSON-lines file",
        ),
    ],
)
def test_file_level_problems_fail_with_the_file_named(tmp_path, con, name, content, message):
    write(tmp_path, name, content)
    with pytest.raises(DeliveryError) as raised:
        ingest_inbox(con, tmp_path)
    assert str(raised.value).startswith(message)


def test_an_unreadable_file_fails_naming_it(tmp_path, con, monkeypatch):
    write(tmp_path, "web/orders_20250306.csv", ORDERS_HEADER + "\n")
    original = os.open

    def refuse(path, flags, *args, **kwargs):
        if path == "orders_20250306.csv":  # files are opened from their folder (open_in_inbox)
            raise PermissionError(13, "Permission denied")
        return original(path, flags, *args, **kwargs)

    # Root reads any file whatever its mode, so the refusal is simulated.
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(
        DeliveryError, match=r"^web/orders_20250306.csv: cannot be read \(Permission denied\)"
    ):
        ingest_inbox(con, tmp_path)


def test_files_outside_the_contract_are_ignored_and_reported(tmp_path, con):
    write(tmp_path, "web/readme.txt", "hello")
    write(tmp_path, "unknown/customers_20250101.csv", "a,b\n1,2\n")
    result = ingest_inbox(con, tmp_path)
    assert result.deliveries == []
    assert sorted(result.ignored_files) == ["unknown/customers_20250101.csv", "web/readme.txt"]


CUSTOMERS_HEADER = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in"


def test_a_birth_date_typo_keeps_the_record_and_its_orders_reach_staging(tmp_path):
    write(
        tmp_path,
        "web/customers_20250306.csv",
        "\n".join(
            [
                CUSTOMERS_HEADER,
                "A1,ann@example.com,Ann,Lee,07911 123456,1937-12-33,,,,GB,2025-01-01T00:00:00Z,false",
                "A2,bob@example.com,Bob,Ray,,1980-02-03,,,,GB,2025-01-01T00:00:00Z,true",
            ]
        )
        + "\n",
    )
    write(
        tmp_path,
        "web/orders_20250306.csv",
        ORDERS_HEADER + "\nO1,A1,2025-03-04T10:15:00Z,12.50,GBP,completed\n",
    )
    con = connect(":memory:", {"as_of": date(2025, 3, 31)})
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    # A bad optional personal field is a field issue, not a bad row.
    result = ingest_inbox(con, tmp_path, max_bad_share=0.0)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined, result.field_issues) == (
        3,
        3,
        0,
        1,
    )
    assert quarantine(con) == []
    assert field_issues(con) == [
        # birth_date is personal (pii: true in the contract): its value is masked as in every preview.
        (
            "web",
            "customers",
            "web/customers_20250306.csv",
            2,
            "birth_date",
            "birth_date is not a date as %Y-%m-%d",
            "1********3",
        ),
    ]
    ((delivery_id, found_at),) = con.execute(
        "select distinct delivery_id, found_at from quality.field_issues"
    ).fetchall()
    assert (
        delivery_id
        == con.execute(
            "select delivery_id from raw.deliveries where file like 'web/customers%'"
        ).fetchall()[0][0]
    )
    assert found_at is not None
    # raw keeps the record with the bad fields null, and everything else as delivered.
    assert con.execute(
        "select account_id, email, birth_date, marketing_opt_in from raw.web_customers order by 1"
    ).fetchall() == [
        ("A1", "ann@example.com", None, False),
        ("A2", "bob@example.com", date(1980, 2, 3), True),
    ]
    run_model(con, "staging/web_customers")
    run_model(con, "staging/web_orders")
    assert con.execute(
        "select source_record_id, first_name, phone_e164, birth_on, has_implausible_birth_date from staging.web_customers order by 1"
    ).fetchall() == [
        ("A1", "Ann", "+447911123456", None, False),
        ("A2", "Bob", None, date(1980, 2, 3), False),
    ]
    assert con.execute(
        "select source_event_id, source_record_id, amount::varchar from staging.web_orders"
    ).fetchall() == [("O1", "A1", "12.50")]


def test_field_issues_of_json_lines_name_the_line_and_column(tmp_path, con):
    write(
        tmp_path,
        "app/users_20250306.jsonl",
        '{"user_id":"U1","name":"Ann Lee","birthday":"02/30/1990","push_opt_in":true}\n'
        "\n"
        '{"user_id":"U2","name":"Bob Ray","birthday":"03/04/1985","signup_ts":"soon","push_opt_in":"maybe"}\n',
    )
    write(
        tmp_path,
        "callcenter/contacts_20250306.csv",
        "contact_id,caller_name,phone,email,contacted_at,reason,resolution,csat,goodwill_points\n"
        "C1,Ann Lee,,,2025-03-01T09:00:00Z,billing,refund,7,-5\n",
    )
    result = ingest_inbox(con, tmp_path, max_bad_share=1.0)
    assert (result.rows_loaded, result.rows_quarantined, result.field_issues) == (1, 2, 1)
    assert field_issues(con) == [
        (
            "app",
            "users",
            "app/users_20250306.jsonl",
            1,
            "birthday",
            "birthday is not a date as %m/%d/%Y",
            "0********0",
        ),
    ]
    # Problems with columns that are not personal quarantine the row, every reason listed.
    assert [(file, line, reason) for file, line, reason, _ in quarantine(con)] == [
        (
            "app/users_20250306.jsonl",
            3,
            "signup_ts is not a timestamp as epoch_ms; push_opt_in is not true or false",
        ),
        ("callcenter/contacts_20250306.csv", 2, "csat is above 5; goodwill_points is negative"),
    ]
    assert con.execute(
        "select user_id, birthday, push_opt_in from raw.app_users order by 1"
    ).fetchall() == [("U1", None, True)]


def test_a_required_field_problem_still_quarantines_the_row_with_all_its_reasons(tmp_path, con):
    write(
        tmp_path,
        "web/customers_20250306.csv",
        "\n".join(
            [
                CUSTOMERS_HEADER,
                ",ann@example.com,Ann,Lee,,1937-12-33,,,,GB,,true",
                "A2,,Bob,Ray,,,,,,,,",
            ]
        )
        + "\n",
    )
    result = ingest_inbox(con, tmp_path, max_bad_share=1.0)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined, result.field_issues) == (
        2,
        1,
        1,
        0,
    )
    assert quarantine(con) == [
        (
            "web/customers_20250306.csv",
            2,
            "missing required account_id; birth_date is not a date as %Y-%m-%d",
            ",ann@example.com,Ann,Lee,,1937-12-33,,,,GB,,true",
        )
    ]
    # A quarantined row's fields are not also field issues: its raw text is in the quarantine.
    assert field_issues(con) == []


def test_field_issues_do_not_count_towards_the_bad_row_threshold(tmp_path, con):
    rows = [f"A{i},,Ann,Lee,,{'1937-12-33' if i % 2 else '1937-12-03'},,,,GB,," for i in range(20)]
    write(tmp_path, "web/customers_20250306.csv", "\n".join([CUSTOMERS_HEADER, *rows]) + "\n")
    result = ingest_inbox(con, tmp_path, max_bad_share=0.05)
    assert (result.rows_loaded, result.rows_quarantined, result.field_issues) == (20, 0, 10)


# ---------------------------------------------------------------- the fast path and the exact path


def ingested(inbox: Path, exact_only: bool = False, monkeypatch=None) -> tuple[list, list]:
    """Everything ingestion wrote for an inbox, and which path read each file."""
    from assets.ingest import fast_path

    if exact_only:
        monkeypatch.setattr(fast_path, "read_records", lambda *args: None)
    con = connect(":memory:")
    try:
        result = ingest_inbox(con, inbox, max_bad_share=1.0)
        tables = [
            con.execute(f"select {columns} from {table} order by all").fetchall()
            for columns, table in [
                ("* exclude (_delivery_id)", "raw.web_orders"),
                ("* exclude (_delivery_id)", "raw.web_customers"),
                ("* exclude (_delivery_id)", "raw.app_events"),
                ("file, line, reason, raw", "quality.quarantine"),
                ("file, line, column_name, reason, masked_value", "quality.field_issues"),
                ("file, rows_read, rows_loaded, rows_quarantined", "raw.deliveries"),
            ]
        ]
    finally:
        con.close()
    return tables, sorted((d["file"], d["read_by"]) for d in result.deliveries)


# Files the fast path reads, each with something the exact path also handles.
FAST_FILES = {
    # Quoted fields with commas and quotes inside, a quote inside a field, blank lines (one
    # of them a quoted empty field), too many and too few fields, a bad row, CRLF breaks.
    "web/orders_20250306.csv": (
        f"{ORDERS_HEADER}\r\n"
        'O1,A1,2025-03-04T10:15:00Z,"12.50",GBP,completed\r\n'
        "\r\n"
        'O2,"A,2",2025-03-04T10:15:00Z,1,GBP,"refunded"\r\n'
        '""\r\n'
        "O3,A3,2025-03-04T10:15:00Z,1,GBP,completed,extra\r\n"
        'O4,A"4,2025-03-04T10:15:00Z,1,GBP\r\n'
        '"O5","A ""five""",never,1,GBP,completed\r\n'
        "   \r\n"
        "O6,A6,2025-03-04T10:15:00Z,-1,GBP,completed\r\n"
    ),
    # A BOM, columns in another order, an extra column, an optional one missing.
    "web/customers_20250306.csv": (
        "\ufeffemail,account_id,note,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at\n"
        'ann@example.com,C1,"hi, there",Ann,Lee,,1937-12-33,"Flat 4, 1 High St",Leeds,LS1 1AA,GB,2025-01-01T00:00:00Z\n'
        ",,,,,,,,,,,\n"
        "b@example.com,C2,x,Bob,Ray,,,,,,GB,2025-01-01T00:00:00Z\n"
    ),
    # Blank lines of spaces and tabs, a truncated line, no line break at the end.
    "app/events_20250306.jsonl": (
        EVENT.format("E1") + "\n \t\n" + EVENT.format("E2")[:30] + "\n\n" + EVENT.format("E3")
    ),
}


def test_the_fast_path_reads_what_the_exact_path_reads(tmp_path, monkeypatch):
    for name, content in FAST_FILES.items():
        write(tmp_path, name, content)
    (tmp_path / "web/orders_20250307.csv.gz").write_bytes(
        gzip.compress(f"{ORDERS_HEADER}\nO9,A9,2025-03-05T10:15:00Z,3,GBP,cancelled\n".encode())
    )
    fast, read_by = ingested(tmp_path)
    assert {path for _, path in read_by} == {"duckdb"}
    exact, read_by = ingested(tmp_path, exact_only=True, monkeypatch=monkeypatch)
    assert {path for _, path in read_by} == {"python"}
    assert fast == exact
    orders, customers, events, quarantined, issues, delivered = fast
    name = "web/orders_20250306.csv"
    assert [row for row in quarantined if row[0] == name] == [
        (name, 6, "expected 6 fields, found 7", "O3,A3,2025-03-04T10:15:00Z,1,GBP,completed,extra"),
        (name, 7, "expected 6 fields, found 5", 'O4,A"4,2025-03-04T10:15:00Z,1,GBP'),
        (
            name,
            8,
            "ordered_at is not a timestamp as iso8601",
            '"O5","A ""five""",never,1,GBP,completed',
        ),
        (name, 10, "total_amount is negative", "O6,A6,2025-03-04T10:15:00Z,-1,GBP,completed"),
    ]
    assert [(row[0], row[1], row[5], row[-1]) for row in orders] == [
        ("O1", "A1", "completed", 2),
        ("O2", "A,2", "refunded", 4),
        ("O9", "A9", "cancelled", 2),
    ]
    # Blank lines (empty, spaces, a quoted empty field) are not rows.
    assert (name, 6, 2, 4) in delivered
    assert [(row[0], row[1], row[6], row[-1]) for row in customers] == [
        ("C1", "ann@example.com", "Flat 4, 1 High St", 2),
        ("C2", "b@example.com", None, 4),
    ]
    assert issues == [
        (
            "web/customers_20250306.csv",
            2,
            "birth_date",
            "birth_date is not a date as %Y-%m-%d",
            "1********3",
        )
    ]
    assert [(row[0], row[-1]) for row in events] == [("E1", 1), ("E3", 5)]
    assert (
        "app/events_20250306.jsonl",
        3,
        "malformed JSON line",
        EVENT.format("E2")[:30],
    ) in quarantined


@pytest.mark.parametrize(
    "content, quarantined",
    [
        # A quoted field going on on the next line: the record's line is its first.
        (
            f'{ORDERS_HEADER}\nO1,A1,2025-03-04T10:15:00Z,1,GBP,"can\ncelled"\nO2,A2,never,1,GBP,completed\n',
            [
                (
                    2,
                    "unknown status (allowed: completed, refunded, cancelled)",
                    'O1,A1,2025-03-04T10:15:00Z,1,GBP,"can\ncelled"',
                ),
                (4, "ordered_at is not a timestamp as iso8601", "O2,A2,never,1,GBP,completed"),
            ],
        ),
        # Not UTF-8: decoded as cp1252, the row's text as delivered.
        (
            f"{ORDERS_HEADER}\nO1,Jos\xe9,never,1,GBP,completed\nO2,A2,2025-03-04T10:15:00Z,1,GBP,completed,x\n".encode(
                "latin-1"
            ),
            [
                (2, "ordered_at is not a timestamp as iso8601", "O1,José,never,1,GBP,completed"),
                (3, "expected 6 fields, found 7", "O2,A2,2025-03-04T10:15:00Z,1,GBP,completed,x"),
            ],
        ),
        # A carriage return alone is a line break.
        (
            f"{ORDERS_HEADER}\nO1,A1,never,1,GBP,completed\rO2,A2,2025-03-04T10:15:00Z,1,GBP\n",
            [
                (2, "ordered_at is not a timestamp as iso8601", "O1,A1,never,1,GBP,completed"),
                (3, "expected 6 fields, found 5", "O2,A2,2025-03-04T10:15:00Z,1,GBP"),
            ],
        ),
        # Text after a closing quote, which the csv module keeps.
        (
            f'{ORDERS_HEADER}\nO1,"A"1,never,1,GBP,completed\n',
            [(2, "ordered_at is not a timestamp as iso8601", 'O1,"A"1,never,1,GBP,completed')],
        ),
        # A NUL byte past the start of the file.
        (
            f"{ORDERS_HEADER}\n"
            + "O0,A0,2025-03-04T10:15:00Z,1,GBP,completed\n" * 100
            + "O1,A\x001,never,1,GBP,completed\n",
            [(102, "ordered_at is not a timestamp as iso8601", "O1,A\x001,never,1,GBP,completed")],
        ),
    ],
    ids=["quoted-newline", "not-utf8", "carriage-return", "text-after-quote", "nul"],
)
def test_files_the_fast_path_declines_are_read_exactly(tmp_path, con, content, quarantined):
    write(tmp_path, "web/orders_20250306.csv", content)
    result = ingest_inbox(con, tmp_path, max_bad_share=1.0)
    assert [d["read_by"] for d in result.deliveries] == ["python"]
    assert [row[1:] for row in quarantine(con)] == quarantined
    assert result.rows_quarantined == len(quarantined)


def test_random_csv_files_read_the_same_on_both_paths(tmp_path, monkeypatch):
    """Lines made of pieces that trouble CSV readers; whichever path reads a file, the result
    is the exact path's."""
    import random

    pieces = [
        "O1",
        "A1",
        "2025-03-04T10:15:00Z",
        "1",
        "GBP",
        "completed",
        "",
        " ",
        '"',
        '""',
        '"a,b"',
        '"x""y"',
        "é",
        "\t",
        ",",
        ",,",
        "\ufeff",
    ]
    weights = [6 if piece.isalnum() else 1 for piece in pieces]  # a lone quote now and then
    rng = random.Random(16)
    for day in range(1, 29):
        lines = [ORDERS_HEADER]
        for _ in range(rng.randint(1, 6)):
            fields = [
                "".join(rng.choices(pieces, weights, k=rng.randint(0, 2)))
                for _ in range(rng.choice([5, 6, 6, 6, 7]))
            ]
            lines.append(",".join(fields))
        write(
            tmp_path,
            f"web/orders_202503{day:02d}.csv",
            rng.choice(["\n", "\r\n"]).join(lines) + "\n",
        )
    fast, read_by = ingested(tmp_path)
    paths = [path for _, path in read_by]
    assert 5 < paths.count("duckdb") < len(paths)  # both paths are tried
    exact, _ = ingested(tmp_path, exact_only=True, monkeypatch=monkeypatch)
    assert fast == exact


def test_a_generated_inbox_with_its_bad_rows_takes_the_fast_path(tmp_path, con, monkeypatch):
    from assets.ingest import fast_path
    from pipelines.generator import generate_inbox

    generate_inbox(people=300, seed=7, out_dir=tmp_path, days=2, bad_row_rate=0.02, compress=True)
    result = ingest_inbox(con, tmp_path, max_bad_share=1.0)
    assert len(result.deliveries) == 16  # 8 file kinds (partner sales included), 2 days
    assert {d["read_by"] for d in result.deliveries} == {"duckdb"}
    assert result.rows_quarantined > 0
    assert result.rows_read == result.rows_loaded + result.rows_quarantined
    # The exact path quarantines the same lines for the same reasons.
    monkeypatch.setattr(fast_path, "read_records", lambda *args: None)
    exact = connect(":memory:")
    try:
        assert ingest_inbox(exact, tmp_path, max_bad_share=1.0).rows_loaded == result.rows_loaded
        assert quarantine(exact) == quarantine(con)
    finally:
        exact.close()


# Every character trim() strips: the space and the other Unicode space separators.
SPACES = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"


def test_trimmed_is_trim_without_decoding_plain_text(con):
    from assets.ingest.deliveries import trimmed

    texts = ["", " ", "  ", "a", " a", "a ", " a ", "a b", "\ta\t", "\na", "é", " é", "é\u3000"]
    texts += [f"{space}x{space}" for space in SPACES] + [f"x{space}y" for space in SPACES]
    texts += ["\u00a0", "\u200b x \u200b", "\ufeffx", "x\u0085"]
    rows = con.execute(
        f"select text, {trimmed('text')}, trim(text) from unnest(?::varchar[]) as t(text)",
        [texts],
    ).fetchall()
    assert [(text, ours) for text, ours, _ in rows] == [(text, theirs) for text, _, theirs in rows]
    # What trim does, by hand: spaces and space separators go, tabs and line breaks stay.
    assert dict((text, ours) for text, ours, _ in rows)["\u3000x\u3000"] == "x"
    assert dict((text, ours) for text, ours, _ in rows)["\ta\t"] == "\ta\t"


# JSON values as a reader sees them: escapes, numbers as JSON writes them, padding.
JSON_VALUES = [
    ('"plain"', "plain"),
    ('"  padded\\u00a0"', "padded"),
    ('"quote \\" inside"', 'quote " inside'),
    ('"back\\\\slash"', "back\\slash"),
    ('"02\\/26\\/1951"', "02/26/1951"),
    ('"\\u00e9t\\u00e9"', "été"),
    ('"tab\\tin"', "tab\tin"),
    ('"é"', "é"),
    ('""', None),
    ('"   "', None),
    ("null", None),
    ("1.50", "1.5"),
    ("1e2", "100.0"),
    ("-7", "-7"),
    ("12345678901234567890", "12345678901234567890"),
    ("true", "true"),
    ("false", "false"),
]


def test_json_values_load_as_their_text(tmp_path, con):
    """Each value's text comes from its JSON text (fast_path reads each line once for all
    columns); it is what json_extract_string reads, trimmed, for every kind of value."""
    lines = [
        f'{{"user_id":"U{n}","name":{value},"email":"e{n}@example.com"}}'
        for n, (value, _) in enumerate(JSON_VALUES)
    ]
    # Whitespace before the object, keys in another order, a key outside the contract twice.
    lines.append(' \t{"name":"Ann","note":1,"note":2,"user_id":"U98"}')
    write(tmp_path, "app/users_20250306.jsonl", "\n".join(lines) + "\n")
    result = ingest_inbox(con, tmp_path, max_bad_share=1.0)
    assert (result.rows_loaded, result.rows_quarantined) == (len(lines), 0)
    loaded = dict(con.execute("select user_id, name from raw.app_users").fetchall())
    expected = {f"U{n}": text for n, (_, text) in enumerate(JSON_VALUES)} | {"U98": "Ann"}
    assert loaded == expected
    # The same texts as DuckDB's own reading of each value.
    oracle = con.execute(
        "select nullif(trim(json_extract_string(line, '$.name')), '') "
        "from unnest(?::varchar[]) with ordinality as t(line, n) order by n",
        [lines],
    ).fetchall()
    assert [text for (text,) in oracle] == [*expected.values()]


def test_json_shapes_and_duplicate_keys_after_one_read(tmp_path, con):
    """Objects and arrays where the contract has one value, keys given twice, lines that
    are not objects: each has its reason, whatever else is on the line."""
    write(
        tmp_path,
        "app/users_20250306.jsonl",
        "\n".join(
            [
                '{"user_id":"U1","name":{"first":"Ann"},"phone":["1","2"]}',
                '{"user_id":"U2","name":"[not an array]","phone":"{not an object}"}',
                '{"user_id":"U3","user_id":"U3","name":"Bob","name":"Rob"}',
                '{"user_id":"U4","name":"\\u007b escaped brace"}',
                '  {"user_id":"U5","birthday":"13/13/2000","name":{}}',
                '"just a string"',
                "42",
                "[]",
                '{"user_id":"U6",}',
                '{"user_id":"U7"',
            ]
        )
        + "\n",
    )
    result = ingest_inbox(con, tmp_path, max_bad_share=1.0)
    assert con.execute("select line, reason from quality.quarantine order by line").fetchall() == [
        (1, "name is a JSON object, not a single value; phone is a JSON array, not a single value"),
        (3, "duplicate JSON key(s) user_id, name"),
        (5, "name is a JSON object, not a single value; birthday is not a date as %m/%d/%Y"),
        (6, "JSON line is not an object"),
        (7, "JSON line is not an object"),
        (8, "JSON line is not an object"),
        (10, "malformed JSON line"),
    ]
    # Brackets inside a string are text; a trailing comma is allowed by DuckDB's reader.
    assert con.execute("select user_id, name, phone from raw.app_users order by 1").fetchall() == [
        ("U2", "[not an array]", "{not an object}"),
        ("U4", "{ escaped brace", None),
        ("U6", None, None),
    ]
    assert result.rows_read == 10


def test_lines_of_any_whitespace_are_blank_on_both_paths(tmp_path, monkeypatch):
    """A line of only whitespace (as str.strip() sees it: ideographic space, separators,
    NEL) is skipped and counted in line numbers; a line starting with whitespace that has
    text after it is a row."""
    write(
        tmp_path,
        "app/events_20250306.jsonl",
        "\n".join(
            [
                EVENT.format("E1"),
                "\u3000\x1c",
                EVENT.format("E2"),
                "\x85 \u2029",
                "\u00a0x",
                "\u2003" + EVENT.format("E3"),
            ]
        )
        + "\n",
    )
    fast, read_by = ingested(tmp_path)
    assert read_by == [("app/events_20250306.jsonl", "duckdb")]
    exact, _ = ingested(tmp_path, exact_only=True, monkeypatch=monkeypatch)
    assert fast == exact
    _, _, events, quarantined, _, delivered = fast
    assert [(row[0], row[-1]) for row in events] == [("E1", 1), ("E2", 3)]
    # An em space is not JSON whitespace: that line is a row, and not JSON.
    assert quarantined == [
        ("app/events_20250306.jsonl", 5, "malformed JSON line", "\u00a0x"),
        ("app/events_20250306.jsonl", 6, "malformed JSON line", "\u2003" + EVENT.format("E3")),
    ]
    assert delivered == [("app/events_20250306.jsonl", 4, 2, 2)]
