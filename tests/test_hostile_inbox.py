"""Ingestion of an inbox someone is trying to abuse: links out of the inbox, files that
leak their rows into messages or forge log lines with their names, gzip bombs, disguised
re-deliveries, JSON that hides a wrong type or a second value, and files with no rows."""

import gzip
import hashlib
import os
import tracemalloc
import zlib
from pathlib import Path

import dagster as dg
import pytest

from assets.ingest.deliveries import (
    DeliveryError,
    Limits,
    find_deliveries,
    ingest_delivery,
    ingest_inbox,
    open_in_inbox,
    shown,
)
from assets.shared.defaults import DEFAULTS

CUSTOMERS_HEADER = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in"
CUSTOMER_ROW = "A1,ann.lee@example.com,Ann,Leeward,07911 123456,1980-02-03,1 High St,Leeds,LS1 1AA,GB,2025-01-01T00:00:00Z,true"
# Pieces of CUSTOMER_ROW no message may ever show.
SECRETS = ("ann.lee", "Leeward", "07911", "High St", "A1,")
ORDERS_HEADER = "order_id,account_id,ordered_at,total_amount,currency,status"
EVENT = '{{"event_id":"{}","user_id":"U1","type":"purchase","ts":1700000000000,"amount":9.99}}'


def write(inbox: Path, name: str, content: str | bytes) -> Path:
    path = inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def failure(con, inbox: Path, **kwargs) -> str:
    with pytest.raises(DeliveryError) as raised:
        ingest_inbox(con, inbox, **kwargs)
    message = str(raised.value)
    assert "\n" not in message and "\r" not in message and "\x1b" not in message
    return message


@pytest.fixture
def con():
    from assets.shared.warehouse import connect

    con = connect(":memory:")
    yield con
    con.close()


# ---------------------------------------------------------------- links and special files


def test_a_link_to_a_system_file_is_refused_unread(tmp_path, con):
    inbox = tmp_path / "inbox"
    (inbox / "web").mkdir(parents=True)
    os.symlink("/etc/passwd", inbox / "web/customers_20250306.csv")
    message = failure(con, inbox)
    assert message.startswith("web/customers_20250306.csv: a symbolic link")
    assert "root" not in message


def test_a_link_to_a_delivery_outside_the_inbox_is_refused_and_nothing_loads(tmp_path, con):
    outside = write(tmp_path, "elsewhere/customers.csv", f"{CUSTOMERS_HEADER}\n{CUSTOMER_ROW}\n")
    inbox = tmp_path / "inbox"
    (inbox / "web").mkdir(parents=True)
    os.symlink(outside, inbox / "web/customers_20250306.csv")
    assert failure(con, inbox).startswith("web/customers_20250306.csv: a symbolic link")
    assert con.execute("select count(*) from raw.web_customers").fetchall() == [(0,)]


def test_a_linked_folder_is_refused_not_walked(tmp_path, con):
    write(tmp_path, "elsewhere/customers_20250306.csv", f"{CUSTOMERS_HEADER}\n{CUSTOMER_ROW}\n")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.symlink(tmp_path / "elsewhere", inbox / "web")
    assert failure(con, inbox).startswith("web: a symbolic link")


def test_a_link_put_in_place_after_listing_is_not_followed_when_opened(tmp_path):
    write(tmp_path, "elsewhere/customers_20250306.csv", f"{CUSTOMERS_HEADER}\n{CUSTOMER_ROW}\n")
    inbox = tmp_path / "inbox"
    (inbox / "app").mkdir(parents=True)
    os.symlink(tmp_path / "elsewhere/customers_20250306.csv", inbox / "app/users_20250306.jsonl")
    os.symlink(tmp_path / "elsewhere", inbox / "web")
    for name in ("app/users_20250306.jsonl", "web/customers_20250306.csv"):
        with pytest.raises(DeliveryError, match=r"a symbolic link"):
            open_in_inbox(inbox, name)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, con):
    (tmp_path / "web").mkdir()
    os.mkfifo(tmp_path / "web/orders_20250306.csv")
    assert failure(con, tmp_path).startswith("web/orders_20250306.csv: not a regular file")


# ---------------------------------------------------------------- no row content in any message


@pytest.mark.parametrize(
    "name, content, message",
    [
        # No header: the first row is taken for one, and must not be printed.
        (
            "web/customers_20250306.csv",
            f"{CUSTOMER_ROW}\n{CUSTOMER_ROW}\n",
            "web/customers_20250306.csv: missing required column(s) account_id; "
            "the header (line 1) has 12 fields, none of them a contract column: is the header row missing?",
        ),
        (
            "web/orders_20250306.csv",
            f"order_id,total_amount,{CUSTOMER_ROW}\n",
            "web/orders_20250306.csv: missing required column(s) account_id, ordered_at; "
            "the header (line 1) has 14 fields, 12 of them not contract columns",
        ),
        # gzip's own message shows the file's first bytes.
        (
            "web/customers_20250306.csv.gz",
            f"{CUSTOMER_ROW}\n",
            "web/customers_20250306.csv.gz: not a readable gzip file (not gzip data)",
        ),
        (
            "web/customers_20250306.csv.gz",
            gzip.compress(f"{CUSTOMERS_HEADER}\n{CUSTOMER_ROW}\n".encode(), mtime=0)[:-12],
            "web/customers_20250306.csv.gz: not a readable gzip file (truncated)",
        ),
        (
            "app/users_20250306.jsonl",
            f"{CUSTOMER_ROW}\n",
            "app/users_20250306.jsonl: not a JSON-lines file (none of its first 1 lines is JSON)",
        ),
        (
            "web/customers_20250306.csv",
            f"{CUSTOMERS_HEADER},email\n{CUSTOMER_ROW}\n",
            "web/customers_20250306.csv: column(s) email appear more than once in the header (line 1)",
        ),
    ],
)
def test_file_errors_never_show_row_content(tmp_path, con, name, content, message):
    write(tmp_path, name, content)
    shown_message = failure(con, tmp_path)
    assert shown_message == message
    assert not any(secret in shown_message for secret in SECRETS)


def test_dagster_events_and_logs_show_no_row_content_and_escaped_names(tmp_path):
    from assets.ingest.assets import raw_deliveries
    from assets.shared.settings import PipelineSettings

    inbox = tmp_path / "inbox"
    write(inbox, "web/customers_20250306.csv", f"{CUSTOMER_ROW}\n")
    write(inbox, "web/notes\x1b[2J\nINFO all good.txt", CUSTOMER_ROW)
    settings = PipelineSettings(
        inbox_dir=str(inbox), warehouse_path=str(tmp_path / "warehouse/omniloyal.duckdb")
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [raw_deliveries], resources={"settings": settings}, instance=instance, raise_on_error=False
    )
    assert not result.success
    logs = instance.all_logs(result.run_id)
    text = "\n".join(entry.message for entry in logs) + "\n".join(
        str(entry.dagster_event.event_specific_data) for entry in logs if entry.dagster_event
    )
    assert "web/customers_20250306.csv: missing required column(s) account_id" in text
    assert not any(secret in text for secret in SECRETS)

    (inbox / "web/customers_20250306.csv").unlink()
    result = dg.materialize([raw_deliveries], resources={"settings": settings}, instance=instance)
    warnings = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if "not read" in entry.user_message
    ]
    assert warnings == [
        "files matching no contract pattern were not read: web/notes\\x1b[2J\\nINFO all good.txt"
    ]


# ---------------------------------------------------------------- file names cannot forge log lines


def test_shown_escapes_control_and_invisible_characters():
    assert shown("web/orders_20250306.csv") == "web/orders_20250306.csv"
    assert shown("a\x1b[31m\nb\r\tc\u202ed\\e") == "a\\x1b[31m\\nb\\r\\tc\\u202ed\\\\e"
    assert shown("Zoë Brontë") == "Zoë Brontë"
    assert (
        shown(os.fsdecode(b"x\xff")) == "x\\xff"
    )  # a byte that is not UTF-8, as the OS returns it


def test_a_file_name_with_escapes_and_a_newline_is_shown_escaped(tmp_path, con):
    write(tmp_path, "web/orders_\x1b[2J\nINFO all good_20250306.csv", "no,header\n1,2\n")
    message = failure(con, tmp_path)
    assert message.startswith(
        "web/orders_\\x1b[2J\\nINFO all good_20250306.csv: missing required column(s)"
    )


def test_a_file_name_that_is_not_utf8_is_refused_naming_it_escaped(tmp_path, con):
    (tmp_path / "web").mkdir()
    Path(os.fsdecode(os.fsencode(tmp_path) + b"/web/orders_\xff_20250306.csv")).write_text(
        ORDERS_HEADER + "\n"
    )
    assert (
        failure(con, tmp_path)
        == "web/orders_\\xff_20250306.csv: file name is not valid UTF-8; rename it"
    )


# ---------------------------------------------------------------- size limits, read as a stream


def _gzip_bomb(expanded_mb: int) -> bytes:
    block = (CUSTOMER_ROW + "\n").encode() * (2**20 // (len(CUSTOMER_ROW) + 1))
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip container
    return b"".join(
        [packer.compress(CUSTOMERS_HEADER.encode() + b"\n")]
        + [packer.compress(block) for _ in range(expanded_mb)]
        + [packer.flush()]
    )


def test_a_gzip_bomb_stops_at_the_size_limit_with_memory_bounded(tmp_path):
    write(tmp_path, "web/customers_20250306.csv.gz", _gzip_bomb(32))
    tracemalloc.start()
    try:
        with pytest.raises(DeliveryError) as raised:
            find_deliveries(tmp_path, limits=Limits(max_file_mb=2, max_line_kb=64))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(raised.value) == (
        "web/customers_20250306.csv.gz: larger than 2 MB once decompressed, the limit (setting max_file_mb); not read further"
    )
    assert peak < 8 * 2**20  # the 32 MB it expands to were never held


def test_a_plain_file_over_the_size_limit_fails_the_same_way(tmp_path, con):
    write(
        tmp_path,
        "web/customers_20250306.csv",
        CUSTOMERS_HEADER + "\n" + (CUSTOMER_ROW + "\n") * 20_000,
    )
    message = failure(con, tmp_path, limits=Limits(max_file_mb=1, max_line_kb=64))
    assert (
        message
        == "web/customers_20250306.csv: larger than 1 MB, the limit (setting max_file_mb); not read further"
    )


def test_a_line_over_the_length_limit_fails_naming_the_line_not_its_text(tmp_path, con):
    write(
        tmp_path,
        "web/customers_20250306.csv",
        f"{CUSTOMERS_HEADER}\n{CUSTOMER_ROW}\n" + "ann.lee" * 200_000 + "\nA3,,,,,,,,,,,\n",
    )
    message = failure(con, tmp_path, limits=Limits(max_file_mb=16, max_line_kb=1024))
    assert (
        message
        == "web/customers_20250306.csv: line 3 is longer than 1024 KB, the limit (setting max_line_kb); not read further"
    )


def test_a_line_without_end_fails_before_it_is_held_whole(tmp_path, con):
    write(
        tmp_path,
        "app/events_20250306.jsonl.gz",
        gzip.compress(EVENT.format("E1").encode() + b"\n" + b"x" * (8 * 2**20)),
    )
    message = failure(con, tmp_path, limits=Limits(max_file_mb=16, max_line_kb=256))
    assert message.startswith("app/events_20250306.jsonl.gz: line 2 is longer than 256 KB")


def test_the_limits_are_settings_with_defaults():
    from assets.shared.settings import PipelineSettings

    assert DEFAULTS["max_file_mb"] == ("OMNILOYAL_MAX_FILE_MB", "2048")
    assert DEFAULTS["max_line_kb"] == ("OMNILOYAL_MAX_LINE_KB", "1024")
    assert Limits() == Limits(int(DEFAULTS["max_file_mb"][1]), int(DEFAULTS["max_line_kb"][1]))
    fields = PipelineSettings.model_fields
    assert fields["max_file_mb"].annotation is int and fields["max_line_kb"].annotation is int


# ---------------------------------------------------------------- the same content, compressed or not


def test_a_redelivery_gzip_compressed_under_a_new_name_adds_nothing(tmp_path, con):
    content = f"{CUSTOMERS_HEADER}\n{CUSTOMER_ROW}\n".encode()
    write(tmp_path, "web/customers_20250306.csv", content)
    assert ingest_inbox(con, tmp_path).rows_loaded == 1
    write(tmp_path, "web/customers_20250307.csv.gz", gzip.compress(content))
    write(tmp_path, "web/customers_20250308.csv.gz", gzip.compress(content, compresslevel=1))
    assert ingest_inbox(con, tmp_path).deliveries == []
    assert con.execute("select count(*) from raw.web_customers").fetchall() == [(1,)]
    assert con.execute(
        "select file, duplicate_of from raw.duplicate_deliveries order by 1"
    ).fetchall() == [
        ("web/customers_20250307.csv.gz", "web/customers_20250306.csv"),
        ("web/customers_20250308.csv.gz", "web/customers_20250306.csv"),
    ]


def test_a_gzip_delivery_ingested_under_its_file_hash_is_not_loaded_again(tmp_path, con):
    """Warehouses built before content hashing know a .gz by the sha256 of its compressed bytes."""
    data = gzip.compress(
        f"{ORDERS_HEADER}\nO1,A1,2025-03-04T10:15:00Z,12.50,GBP,completed\n".encode()
    )
    write(tmp_path, "web/orders_20250306.csv.gz", data)
    ingest_inbox(con, tmp_path)
    con.execute("update raw.deliveries set delivery_id = ?", [hashlib.sha256(data).hexdigest()])
    assert ingest_inbox(con, tmp_path).deliveries == []
    assert con.execute("select count(*) from raw.web_orders").fetchall() == [(1,)]


def test_a_file_changed_between_listing_and_reading_fails(tmp_path, con):
    write(tmp_path, "web/orders_20250306.csv", ORDERS_HEADER + "\n")
    (delivery,) = find_deliveries(tmp_path)
    write(
        tmp_path,
        "web/orders_20250306.csv",
        ORDERS_HEADER + "\nO1,A1,2025-03-04T10:15:00Z,12.50,GBP,completed\n",
    )
    from assets.ingest.deliveries import create_raw_tables

    create_raw_tables(con)
    with pytest.raises(
        DeliveryError, match=r"^web/orders_20250306.csv: changed while it was being read"
    ):
        ingest_delivery(con, delivery)


# ---------------------------------------------------------------- JSON that hides a wrong type or a second value


def test_json_objects_arrays_and_duplicate_keys_are_quarantined_with_a_reason(tmp_path, con):
    write(
        tmp_path,
        "app/events_20250306.jsonl",
        "\n".join(
            [
                EVENT.format("E1"),
                '{"event_id":"E2","user_id":{"id":"U1"},"type":"purchase","ts":1700000000000,"amount":5}',
                '{"event_id":"E3","user_id":"U1","type":"purchase","ts":1700000000000,"amount":[5, 6]}',
                '{"event_id":"E4","user_id":"U1","user_id":"U2","type":"purchase","ts":1700000000000}',
                '{"event_id":"E5","user_id":"U1","type":"purchase","ts":1700000000000,"note":1,"note":2}',
                '{"event_id":"E6","user_id":null,"type":"purchase","ts":1700000000000}',
                "[" * 100_000,
            ]
        )
        + "\n",
    )
    result = ingest_inbox(con, tmp_path, max_bad_share=1.0)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (7, 2, 5)
    assert con.execute("select line, reason from quality.quarantine order by line").fetchall() == [
        (2, "user_id is a JSON object, not a single value"),
        (3, "amount is a JSON array, not a single value"),
        (4, "duplicate JSON key(s) user_id"),
        (6, "missing required user_id"),
        (7, "malformed JSON line"),
    ]
    # A key outside the contract given twice changes nothing that is loaded.
    assert con.execute("select event_id, user_id from raw.app_events order by 1").fetchall() == [
        ("E1", "U1"),
        ("E5", "U1"),
    ]


def test_a_json_object_in_an_optional_personal_field_quarantines_the_row(tmp_path, con):
    write(
        tmp_path,
        "app/users_20250306.jsonl",
        '{"user_id":"U1","email":{"address":"ann.lee@example.com"},"push_opt_in":true}\n{"user_id":"U2","email":"b@example.com"}\n',
    )
    result = ingest_inbox(con, tmp_path, max_bad_share=1.0)
    assert (result.rows_loaded, result.rows_quarantined, result.field_issues) == (1, 1, 0)
    assert con.execute("select line, reason from quality.quarantine").fetchall() == [
        (1, "email is a JSON object, not a single value")
    ]


# ---------------------------------------------------------------- files with no rows


@pytest.mark.parametrize(
    "name, content",
    [
        ("web/orders_20250306.csv", b""),
        ("web/orders_20250306.csv", ORDERS_HEADER + "\r\n"),
        ("web/orders_20250306.csv", "\n\n"),
        (
            "web/orders_20250306.csv.gz",
            gzip.compress(b"", mtime=0),
        ),  # fixed mtime: the same test id in every worker
        ("app/events_20250306.jsonl", b""),
        ("app/events_20250306.jsonl", "\n  \n"),
    ],
)
def test_a_file_with_no_rows_is_a_delivery_of_zero_rows(tmp_path, con, name, content):
    write(tmp_path, name, content)
    result = ingest_inbox(con, tmp_path, max_bad_share=0.0)
    assert [(d["file"], d["rows_read"]) for d in result.deliveries] == [(name, 0)]
    assert con.execute(
        "select file, rows_read, rows_loaded, rows_quarantined from raw.deliveries"
    ).fetchall() == [(name, 0, 0, 0)]


def test_a_header_only_file_still_needs_the_required_columns(tmp_path, con):
    write(tmp_path, "web/orders_20250306.csv", "order_id,total_amount\n")
    assert failure(con, tmp_path).startswith(
        "web/orders_20250306.csv: missing required column(s) account_id, ordered_at"
    )


# ---------------------------------------------------------------- the stream reads as the whole file did


def test_reading_in_small_chunks_gives_the_same_records(tmp_path, monkeypatch):
    from assets.ingest import deliveries
    from assets.shared.warehouse import connect

    body = "\r\n".join(
        [
            ORDERS_HEADER,
            "O1,A1,2025-03-04T10:15:00Z,1,GBP,completed",
            'O2,A1,2025-03-04T10:15:00Z,1,GBP,"can\r\ncelled"',
        ]
    )
    write(
        tmp_path,
        "web/orders_20250306.csv",
        body + "\rO3,A1,2025-03-04T10:15:00Z,1,GBP,refunded\n\nO4,A1,never,1,GBP\r",
    )
    write(
        tmp_path,
        "app/events_20250306.jsonl",
        EVENT.format("E1") + "\r\n\r\n" + EVENT.format("E2") + "\r" + EVENT.format("E3"),
    )

    def ingested() -> list:
        con = connect(":memory:")
        ingest_inbox(con, tmp_path, max_bad_share=1.0)
        return [
            con.execute(f"select {columns} from {table} order by all").fetchall()
            for columns, table in [
                ("order_id, status, _file, _line", "raw.web_orders"),
                ("event_id, _file, _line", "raw.app_events"),
                ("file, line, reason, raw", "quality.quarantine"),
                ("file, rows_read, rows_loaded", "raw.deliveries"),
            ]
        ]

    whole = ingested()
    orders, events = "web/orders_20250306.csv", "app/events_20250306.jsonl"
    assert whole == [
        [("O1", "completed", orders, 2), ("O3", "refunded", orders, 5)],
        [("E1", events, 1), ("E2", events, 3), ("E3", events, 4)],
        [
            (
                orders,
                3,
                "unknown status (allowed: completed, refunded, cancelled)",
                'O2,A1,2025-03-04T10:15:00Z,1,GBP,"can\ncelled"',
            ),
            (orders, 7, "expected 6 fields, found 5", "O4,A1,never,1,GBP"),
        ],
        [(events, 3, 3), (orders, 4, 2)],
    ]
    for size in (1, 2, 3, 7):
        monkeypatch.setattr(deliveries, "CHUNK_BYTES", size)
        assert ingested() == whole


def test_every_refused_file_is_named_at_once_a_line_each(tmp_path, con):
    inbox = tmp_path / "inbox"
    (inbox / "web").mkdir(parents=True)
    os.symlink("/etc/passwd", inbox / "web/customers_20250306.csv")
    write(
        inbox, "store/members_20250306.csv", "Ann,Leeward,ann.lee@example.com,07911 123456\n"
    )  # no header
    write(
        inbox, "app/events_20250306.jsonl", "not json\n" * 3 + EVENT.format("E1") + "\n"
    )  # 75% bad rows
    write(
        inbox,
        "web/orders_20250306.csv",
        f"{ORDERS_HEADER}\nO1,A9,2025-03-06T10:00:00Z,10.00,GBP,completed\n",
    )
    with pytest.raises(DeliveryError) as raised:
        ingest_inbox(con, inbox)
    lines = str(raised.value).splitlines()
    # Files refused when listed first, then those that failed to load, in delivery order.
    assert [line.split(":")[0] for line in lines] == [
        "web/customers_20250306.csv",
        "app/events_20250306.jsonl",
        "store/members_20250306.csv",
    ]
    assert (
        "a symbolic link" in lines[0]
        and "threshold" in lines[1]
        and "is the header row missing?" in lines[2]
    )
    assert not any(secret in str(raised.value) for secret in SECRETS + ("root",))
