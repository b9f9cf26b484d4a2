"""Ingestion: every kind of bad row and bad file, decoding, idempotency."""

import gzip
import shutil
from pathlib import Path

import pytest

from assets.deliveries import DeliveryError, ingest_inbox
from assets.warehouse import connect

ORDERS_HEADER = "order_id,account_id,ordered_at,total_amount,currency,status"


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
    return con.execute("select file, line, reason, raw from quality.quarantine order by file, line").fetchall()


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
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (9, 2, 7)
    assert quarantine(con) == [
        ("web/orders_20250306.csv", 3, "total_amount is negative", "O2,A1,2025-03-05T10:15:00Z,-3,GBP,completed"),
        ("web/orders_20250306.csv", 4, "ordered_at is not a timestamp as iso8601", "O3,A2,yesterday,5,GBP,refunded"),
        ("web/orders_20250306.csv", 5, "expected 6 fields, found 5", "O4,A2,2025-03-05T10:15:00Z,5,GBP"),
        ("web/orders_20250306.csv", 6, "missing required account_id", "O5,,2025-03-05T10:15:00Z,5,GBP,completed"),
        ("web/orders_20250306.csv", 7, "total_amount is not a number", 'O6,A3,2025-03-06T00:00:00+01:00,"1,000.00",GBP,cancelled'),
        (
            "web/orders_20250306.csv",
            8,
            "unknown status (allowed: completed, refunded, cancelled)",
            'O7,A3,2025-03-06T00:00:00+01:00,7,GBP,"can\ncelled"',
        ),
        # The embedded newline above makes O8 start on line 10.
        ("web/orders_20250306.csv", 10, "unknown status (allowed: completed, refunded, cancelled)", "O8,A3,2025-03-06T00:00:00+01:00,7,GBP,teleport"),
    ]
    loaded = con.execute("select order_id, ordered_at::varchar, total_amount::varchar, _line from raw.web_orders order by 1").fetchall()
    # Offsets are converted to UTC.
    assert loaded == [("O1", "2025-03-04 10:15:00", "12.50", 2), ("O9", "2025-03-06 23:00:00", "7.00", 11)]


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
    assert con.execute("select event_id, type, ts::varchar, amount::varchar from raw.app_events order by 1").fetchall() == [
        ("E1", "purchase", "2023-11-14 22:13:20", "9.99"),
        ("E4", "check_in", "2023-11-14 22:13:20", None),
    ]


def test_latin1_and_bom_and_gzip_are_decoded_not_dropped(tmp_path, con):
    header = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in\n"
    write(tmp_path, "web/customers_20250301.csv", (header + "A1,,José,Müller,,,,,,,,\n").encode("latin-1"))
    write(tmp_path, "web/customers_20250302.csv", b"\xef\xbb\xbf" + (header + "A2,,Zoë,Brontë,,,,,,,,true\n").encode("utf-8"))
    (tmp_path / "web/customers_20250303.csv.gz").write_bytes(gzip.compress((header + "A3,,Siobhán,Ó Sé,,,,,,,,false\n").encode()))
    ingest_inbox(con, tmp_path)
    assert con.execute("select account_id, first_name, last_name, marketing_opt_in from raw.web_customers order by 1").fetchall() == [
        ("A1", "José", "Müller", None),
        ("A2", "Zoë", "Brontë", True),
        ("A3", "Siobhán", "Ó Sé", False),
    ]


def test_rerun_and_redelivered_copy_add_nothing(tmp_path, con):
    write(tmp_path, "web/orders_20250306.csv", ORDERS_HEADER + "\nO1,A1,2025-03-04T10:15:00Z,12.50,GBP,completed\n")
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
    rows = [f"O{i},A1,2025-03-04T10:15:00Z,1,GBP,completed" for i in range(18)] + ["X,A1,never,1,GBP,completed"] * 2
    write(tmp_path, "web/orders_20250306.csv", "\n".join([ORDERS_HEADER, *rows]) + "\n")
    with pytest.raises(DeliveryError, match=r"web/orders_20250306.csv: 2 of 20 rows \(10.0%\) break the contract, above the 5% threshold"):
        ingest_inbox(con, tmp_path, max_bad_share=0.05)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("web/orders_20250306.csv", "order_id,ordered_at,total_amount\nO1,2025-01-01T00:00:00Z,1\n", "web/orders_20250306.csv: missing required column(s) account_id"),
        ("web/orders_20250306.csv", "", "web/orders_20250306.csv: empty file, expected a header row"),
        ("web/orders_20250306.csv.gz", b"not gzip at all", "web/orders_20250306.csv.gz: not a readable gzip file"),
        ("web/orders_20250306.csv", b"\x00\x01\x02binary", "web/orders_20250306.csv: binary content, not a CSV text file"),
        ("web/orders_latest.csv", ORDERS_HEADER + "\n", "web/orders_latest.csv: file name has no _YYYYMMDD delivery date"),
        ("app/users_20250306.jsonl", "user_id,email\nU1,a@b.com\n", "app/users_20250306.jsonl: not a JSON-lines file"),
    ],
)
def test_file_level_problems_fail_with_the_file_named(tmp_path, con, name, content, message):
    write(tmp_path, name, content)
    with pytest.raises(DeliveryError) as raised:
        ingest_inbox(con, tmp_path)
    assert str(raised.value).startswith(message)


def test_an_unreadable_file_fails_naming_it(tmp_path, con, monkeypatch):
    path = write(tmp_path, "web/orders_20250306.csv", ORDERS_HEADER + "\n")
    original = Path.open

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied")
        return original(self, *args, **kwargs)

    # Root reads any file whatever its mode, so the refusal is simulated.
    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(DeliveryError, match=r"^web/orders_20250306.csv: cannot be read \(Permission denied\)"):
        ingest_inbox(con, tmp_path)


def test_files_outside_the_contract_are_ignored_and_reported(tmp_path, con):
    write(tmp_path, "web/readme.txt", "hello")
    write(tmp_path, "unknown/customers_20250101.csv", "a,b\n1,2\n")
    result = ingest_inbox(con, tmp_path)
    assert result.deliveries == []
    assert sorted(result.ignored_files) == ["unknown/customers_20250101.csv", "web/readme.txt"]
