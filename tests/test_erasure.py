"""Erasure end to end, on a hand-built inbox of a handful of people, two runs and an ingestion:

1. P has a web account, an app user and a store card (one customer through identity);
   Q, another person, shares P's landline (a household phone). Both buy things.
2. A request to be forgotten arrives by P's e-mail (written by `omniloyal forget`).
3. The web shop re-sends P's old account row and a new order of P's account: ingested by
   the ingestion step's own function into a copy of the published warehouse (a third
   pipeline run would cost 20 s and prove nothing more about the filter).

What is proved: after run 2 no value of P's is in any text or date column of any table of
the published file or of the analytics file (except the phone Q still holds), Q is
untouched, P's ledger entries stay under a pseudonymous id closed to 0 by an 'erasure'
entry, privacy.erasure_log counts the request; in run 3 P's rows are dropped at ingestion
and counted, and rows read = loaded + quarantined + suppressed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from pipelines.cli import main
from pipelines.forget import write_request

pytestmark = pytest.mark.e2e

AS_OF = ["2026-06-01", "2026-06-02"]
P = {
    "email": "perpetua.zandvoort@example.org",
    "shared_phone": "+441134960000",  # P's and Q's household landline
    "mobile": "+447700900461",  # P's own
    "first_name": "Perpetua",
    "last_name": "Zandvoort",
    "birth_on": "1971-04-05",
    "street": "17 Quillfeather Row",
    "postcode": "LS6 3QW",
}
# Text of P's raw rows as delivered (raw tables and quarantine keep delivered text).
P_DELIVERED = ["Zandvoort", "Perpetua", "Quillfeather", "perpetua.zandvoort", "07700 900461"]

WEB_HEADER = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in"
WEB_P = (
    "WP1,Perpetua.Zandvoort@example.org,Perpetua,Zandvoort,0113 496 0000,1971-04-05,"
    "17 Quillfeather Row,Leeds,LS6 3QW,GB,2024-01-10T09:00:00Z,true"
)
WEB_ROWS = [
    WEB_P,
    "WQ1,quentin.marsh@example.net,Quentin,Marsh,0113 496 0000,1969-11-20,3 Heron Walk,Leeds,LS7 2AB,GB,2024-02-01T10:00:00Z,false",
    "WA1,alma.boyce@example.com,Alma,Boyce,07700 900111,1985-06-07,2 Elm Close,York,YO1 7HH,GB,2024-03-01T10:00:00Z,true",
    "WB1,bram.holt@example.com,Bram,Holt,07700 900222,1990-09-09,9 Oak Way,Hull,HU1 1AA,GB,2024-03-02T10:00:00Z,false",
    "WC1,cora.finch@example.com,Cora,Finch,07700 900333,1978-01-30,4 Ash Lane,Bath,BA1 1AA,GB,2024-03-03T10:00:00Z,true",
]
ORDERS_HEADER = "order_id,account_id,ordered_at,total_amount,currency,status"
ORDERS = [
    "OP1,WP1,2026-03-01T12:00:00Z,120.00,GBP,completed",
    "OP2,WP1,2026-04-01T12:00:00Z,80.00,GBP,completed",
    "OQ1,WQ1,2026-03-05T12:00:00Z,60.00,GBP,completed",
    "OA1,WA1,2026-03-06T12:00:00Z,30.00,GBP,completed",
]
APP_USERS = [
    {
        "user_id": "UP1",
        "email": "perpetua.zandvoort@example.org",
        "name": "Perpetua Zandvoort",
        "phone": "+44 7700 900461",
        "birthday": "04/05/1971",
        "signup_ts": 1717000000000,
        "push_opt_in": True,
    },
    {
        "user_id": "UB1",
        "email": "bram.holt@example.com",
        "name": "Bram Holt",
        "phone": "07700 900222",
        "birthday": "09/09/1990",
        "signup_ts": 1717000000000,
        "push_opt_in": False,
    },
]
APP_EVENTS = [
    {"event_id": "EP1", "user_id": "UP1", "type": "purchase", "ts": 1772000000000, "amount": 40.0},
    {"event_id": "EP2", "user_id": "UP1", "type": "check_in", "ts": 1772100000000, "amount": None},
]
STORE_HEADER = "card_number,first_name,last_name,phone,postcode,date_of_birth,enrolled_on,store_id"
STORE_ROWS = [
    "SP1,Perpetua,Zandvoort,07700 900461,LS6 3QW,05/04/1971,2024-05-01,S01",
    "SC1,Cora,Finch,07700 900333,BA1 1AA,30/01/1978,2024-05-02,S01",
]
TXN_HEADER = "txn_id,store_id,card_number,txn_ts,amount,kind"
TXNS = [
    "TP1,S01,SP1,2026-05-01 10:00:00,55.00,sale",
    "TC1,S01,SC1,2026-05-02 10:00:00,25.00,sale",
]


def write(inbox: Path, name: str, lines: list[str]) -> None:
    path = inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run(tmp: Path, as_of: str) -> None:
    code = main(
        [
            "run",
            "--inbox",
            str(tmp / "inbox"),
            "--warehouse",
            str(tmp / "w" / "omniloyal.duckdb"),
            "--exports",
            str(tmp / "x"),
            "--reports",
            str(tmp / "r"),
            "--as-of",
            as_of,
            "--phone-region",
            "GB",
        ]
    )
    assert code == 0


def query(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def snapshot(warehouse: Path) -> dict:
    """What the tests compare between runs: Q's customer, records and balance; P's customer."""
    q_customer = query(
        warehouse,
        "select customer_id from identity.source_records where source = 'web' and source_record_id = 'WQ1'",
    )[0][0]
    return {
        "q_customer": q_customer,
        "q_records": query(
            warehouse,
            "select source, source_record_id from identity.source_records where customer_id = ? order by all",
            [q_customer],
        ),
        "q_balance": query(
            warehouse,
            "select points_balance, points_earned from loyalty.balances where customer_id = ?",
            [q_customer],
        ),
        "q_ledger": query(
            warehouse,
            "select entry_id, points from loyalty.ledger where customer_id = ? order by entry_id",
            [q_customer],
        ),
        "p_customers": query(
            warehouse,
            "select distinct customer_id from identity.source_records "
            "where source_record_id in ('WP1', 'UP1', 'SP1')",
        ),
        "p_found": hits(warehouse, [P["email"], P["last_name"]]),
        "p_ledger_points": query(
            warehouse,
            "select sum(points) from loyalty.ledger join identity.source_records using (customer_id) "
            "where source_record_id = 'WP1'",
        )[0][0],
    }


@pytest.fixture(scope="module")
def erased(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("erasure")
    inbox = tmp / "inbox"
    write(inbox, "web/customers_20260601.csv", [WEB_HEADER, *WEB_ROWS])
    write(inbox, "web/orders_20260601.csv", [ORDERS_HEADER, *ORDERS])
    write(inbox, "app/users_20260601.jsonl", [json.dumps(u) for u in APP_USERS])
    write(inbox, "app/events_20260601.jsonl", [json.dumps(e) for e in APP_EVENTS])
    write(inbox, "store/members_20260601.csv", [STORE_HEADER, *STORE_ROWS])
    write(inbox, "store/transactions_20260601.csv", [TXN_HEADER, *TXNS])
    warehouse = tmp / "w" / "omniloyal.duckdb"
    run(tmp, AS_OF[0])
    before = snapshot(warehouse)
    (tmp / "run1.duckdb").write_bytes(warehouse.read_bytes())  # for the household cases below

    path, request_id = write_request(
        inbox,
        email=P["email"].upper(),  # as a person types it: standardized like the records
        request_id="REQ-1",
        now=datetime(2026, 6, 2, 8, 30, tzinfo=UTC),
    )
    run(tmp, AS_OF[1])
    after = snapshot(warehouse)
    erased_state = {
        "log": query(warehouse, "select * from privacy.erasure_log"),
        "erased_records": query(
            warehouse,
            "select source, source_record_id, erased_customer_id from privacy.erased_records order by all",
        ),
    }
    return {
        "tmp": tmp,
        "warehouse": warehouse,
        "analytics": warehouse.with_name("omniloyal_analytics.duckdb"),
        "before": before,
        "after": after,
        "request_file": path,
        "request_id": request_id,
        **erased_state,
    }


def hits(path: Path, needles: list[str]) -> dict[str, int]:
    """Every text and date column of every table of a DuckDB file, searched set-based (one
    query per column, case-insensitive substring) for any of the needles; table.column -> rows."""
    found = {}
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute(
            "create temp table needles as select lower(unnest(?::varchar[])) as needle", [needles]
        )
        columns = con.execute(
            "select schema_name, table_name, column_name from duckdb_columns() "
            "where database_name = current_database() and not internal "
            "and (data_type = 'VARCHAR' or data_type = 'DATE') order by all"
        ).fetchall()
        for schema, table, column in columns:
            n = con.execute(
                f'select count(*) from "{schema}"."{table}" as t where exists ('
                f'select 1 from temp.needles where contains(lower(cast(t."{column}" as varchar)), needle))'
            ).fetchall()[0][0]
            if n:
                found[f"{schema}.{table}.{column}"] = n
    return found


P_VALUES = [
    P["email"],
    P["mobile"],
    P["first_name"],
    P["last_name"],
    P["birth_on"],
    P["street"],
    P["postcode"],
    *P_DELIVERED,
]


def test_before_the_request_p_is_one_customer_of_three_records(erased):
    before = erased["before"]
    assert len(before["p_customers"]) == 1
    # P is found in the warehouse before: the search below can find what it looks for.
    assert set(before["p_found"]) >= {
        "raw.web_customers.email",
        "staging.web_customers.email",
        "core.customers.email",
        "raw.store_members.last_name",
        "identity.match_input.last_name_key",
    }


def test_no_value_of_p_is_left_in_any_table_of_either_file(erased):
    for path in (erased["warehouse"], erased["analytics"]):
        assert hits(path, P_VALUES) == {}, path.name


def test_the_shared_phone_stays_with_q_and_q_is_untouched(erased):
    before, after = erased["before"], erased["after"]
    assert after["q_customer"] == before["q_customer"]
    assert after["q_records"] == before["q_records"] == [("web", "WQ1")]
    assert after["q_balance"] == before["q_balance"]
    assert after["q_ledger"] == before["q_ledger"]
    phone = query(
        erased["warehouse"],
        "select source_record_id, phone_e164 from staging.web_customers where phone_e164 = ?",
        [P["shared_phone"]],
    )
    assert phone == [("WQ1", P["shared_phone"])]


def test_p_accounting_stays_under_a_pseudonymous_id_closed_to_zero(erased):
    w = erased["warehouse"]
    records = erased["erased_records"]
    assert [(s, r) for s, r, _ in records] == [("app", "UP1"), ("store", "SP1"), ("web", "WP1")]
    ids = {x for _, _, x in records}
    assert len(ids) == 1
    (pseudo,) = ids
    assert pseudo.startswith("X") and len(pseudo) == 13
    assert pseudo not in {c for (c,) in erased["before"]["p_customers"]}
    # Hand-computed from the bundled program's earn rates is fragile; the sum before the
    # closing entry equals what P had before the request, and the closing entry takes it all.
    entries = query(
        w,
        "select entry_type, points, source_event_id from loyalty.ledger where customer_id = ?",
        [pseudo],
    )
    kept_events = {e for _, _, e in entries if e}
    assert {"OP1", "OP2", "EP1", "TP1"} <= kept_events
    closing = [p for t, p, _ in entries if t == "erasure"]
    before_total = erased["before"]["p_ledger_points"]
    assert before_total > 0
    assert closing == [-sum(p for t, p, _ in entries if t != "erasure")]
    assert query(
        w, "select points_balance from loyalty.balances where customer_id = ?", [pseudo]
    ) == [(0,)]
    # The id leads to no person: no customer row, no record.
    assert query(w, "select count(*) from core.customers where customer_id = ?", [pseudo]) == [(0,)]
    assert query(
        w, "select count(*) from identity.source_records where customer_id = ?", [pseudo]
    ) == [(0,)]


def test_the_erasure_log_counts_the_request_without_personal_data(erased):
    (row,) = erased["log"]
    names = [
        "request_id",
        "received_at",
        "completed_at",
        "status",
        "matched_by",
        "customers_erased",
        "records_erased",
        "identifiers_suppressed",
        "tables_touched",
        "rows_touched",
    ]
    log = dict(zip(names, row))
    assert log["request_id"] == "REQ-1"
    assert log["received_at"] == datetime(2026, 6, 2, 8, 30)
    assert log["completed_at"] is not None and log["status"] == "completed"
    assert log["matched_by"] == "email"
    assert (log["customers_erased"], log["records_erased"]) == (1, 3)
    # The e-mail, P's mobile and three record ids; not the landline Q shares.
    assert log["identifiers_suppressed"] == 5
    assert log["tables_touched"] > 3 and log["rows_touched"] > 3
    kinds = query(
        erased["warehouse"],
        "select kind, count(*) from privacy.suppressed_identifiers group by 1 order by 1",
    )
    assert kinds == [("email", 1), ("phone", 1), ("record", 3)]
    # The request row keeps no e-mail once applied.
    assert query(erased["warehouse"], "select email, phone from raw.erasure_requests") == [
        (None, None)
    ]


def test_a_redelivery_of_p_is_dropped_at_ingestion_and_counted(erased, tmp_path):
    """The web shop re-sends P's account (beside one new account) and a new order of P's
    account (beside one of the new account), ingested as the next run's first step would."""
    from assets.ingest.deliveries import ingest_inbox
    from assets.shared.pseudonyms import load_salt, set_salt
    from assets.shared.warehouse import MACROS_FILE, connect, run_model
    from assets.staging.standardizers import register_udfs

    inbox = erased["tmp"] / "inbox"
    write(
        inbox,
        "web/customers_20260603.csv",
        [
            WEB_HEADER,
            WEB_P,
            "WD1,dora.vale@example.com,Dora,Vale,07700 900444,1992-02-02,1 Pine Rd,Ely,CB7 4AA,GB,2026-06-02T10:00:00Z,true",
        ],
    )
    write(
        inbox,
        "web/orders_20260603.csv",
        [
            ORDERS_HEADER,
            "OP3,WP1,2026-06-02T12:00:00Z,99.00,GBP,completed",
            "OD1,WD1,2026-06-02T13:00:00Z,10.00,GBP,completed",
        ],
    )
    copy = tmp_path / "next_build.duckdb"
    copy.write_bytes(erased["warehouse"].read_bytes())
    con = connect(copy, {"as_of": datetime(2026, 6, 3).date()})
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    set_salt(con, load_salt(erased["warehouse"]))
    result = ingest_inbox(con, inbox)
    assert (result.rows_read, result.rows_loaded, result.rows_suppressed) == (4, 2, 2)
    run_model(con, "quality/source_summary")
    summary = con.execute(
        "select file, rows_read, rows_loaded, rows_quarantined, rows_suppressed from quality.source_summary "
        "where delivered_on = date '2026-06-03' order by file"
    ).fetchall()
    assert summary == [
        ("web/customers_20260603.csv", 2, 1, 0, 1),
        ("web/orders_20260603.csv", 2, 1, 0, 1),
    ]
    assert con.execute(
        "select count(*) from raw.deliveries where rows_read <> rows_loaded + rows_quarantined + rows_suppressed"
    ).fetchall() == [(0,)]
    assert con.execute(
        "select order_id from raw.web_orders where _delivered_on = date '2026-06-03'"
    ).fetchall() == [("OD1",)]
    assert con.execute("select account_id from raw.web_customers").fetchall().count(("WP1",)) == 0
    # Nothing of the dropped rows is kept, not even in quarantine.
    assert con.execute(
        "select count(*) from quality.quarantine where contains(raw, 'Zandvoort')"
    ).fetchall() == [(0,)]
    con.close()
    (inbox / "web/customers_20260603.csv").unlink()
    (inbox / "web/orders_20260603.csv").unlink()


def test_without_the_salt_a_suppression_list_refuses_to_ingest(erased, tmp_path):
    from assets.ingest.deliveries import DeliveryError, ingest_inbox
    from assets.shared.warehouse import connect

    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(erased["warehouse"].read_bytes())
    con = connect(copy)
    with pytest.raises(DeliveryError, match="no pseudonym salt"):
        ingest_inbox(con, tmp_path)
    con.close()


def test_forget_refuses_bad_arguments_in_one_line_without_the_value(tmp_path, capsys):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cases = [
        ([], "name the person"),
        (["--email", "not-an-address@"], "--email is not an e-mail address"),
        (["--phone", "call me maybe"], "--phone is not a phone number"),
        (["--source", "web"], "--source and --record-id go together"),
        (["--source", "fax", "--record-id", "1"], "--source must be one of"),
        (["--email", "a@example.com", "--request-id", "../x"], "--request-id must be"),
    ]
    for argv, expected in cases:
        assert main(["forget", "--inbox", str(inbox), *argv]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and expected in err, err
        assert "not-an-address" not in err and "call me" not in err
    assert not any(inbox.rglob("*.csv"))
    assert main(["forget", "--inbox", str(tmp_path / "nowhere"), "--email", "a@example.com"]) == 2
    assert "inbox folder does not exist" in capsys.readouterr().err


def test_forget_writes_a_request_the_contract_reads(tmp_path, capsys):
    from assets.ingest.deliveries import find_deliveries, ingest_inbox
    from assets.shared.warehouse import connect

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    assert main(["forget", "--inbox", str(inbox), "--source", "store", "--record-id", "SP1"]) == 0
    assert "written to" in capsys.readouterr().out
    (path,) = (inbox / "privacy").glob("erasure_requests_*.csv")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    (delivery,) = find_deliveries(inbox)
    assert delivery.spec.table == "erasure_requests"
    con = connect(":memory:")
    result = ingest_inbox(con, inbox)
    assert (result.rows_loaded, result.rows_quarantined) == (1, 0)
    ((request_id, email, source, record, received),) = con.execute(
        "select request_id, email, source, source_record_id, received_at from raw.erasure_requests"
    ).fetchall()
    assert request_id.startswith("ER-") and (email, source, record) == (None, "store", "SP1")
    assert received is not None


def test_a_request_naming_nobody_is_quarantined_with_its_reason(tmp_path):
    from assets.ingest.deliveries import ingest_inbox
    from assets.shared.warehouse import connect

    inbox = tmp_path / "inbox"
    write(
        inbox,
        "privacy/erasure_requests_20260601.csv",
        [
            "request_id,email,phone,source,source_record_id,received_at",
            "R1,,,web,,2026-06-01T00:00:00Z",
            "R2,a@b.example,,,,",
        ],
    )
    con = connect(":memory:")
    ingest_inbox(con, inbox, max_bad_share=1.0)
    assert con.execute("select request_id from raw.erasure_requests").fetchall() == [("R2",)]
    ((reason,),) = con.execute("select reason from quality.quarantine").fetchall()
    assert reason == "none of email, or phone, or source with source_record_id given"


def apply_to_run_one(erased, tmp_path, requests: list[tuple]) -> duckdb.DuckDBPyConnection:
    """The run-1 warehouse (P and Q both known to identity) with these requests delivered,
    applied as the ingestion step applies them."""
    from assets.privacy.erasure import apply_erasure_requests
    from assets.shared.pseudonyms import load_salt, set_salt
    from assets.shared.warehouse import connect
    from assets.staging.standardizers import register_udfs

    copy = tmp_path / "run1.duckdb"
    copy.write_bytes((erased["tmp"] / "run1.duckdb").read_bytes())
    con = connect(copy)
    register_udfs(con, "GB")
    set_salt(con, load_salt(erased["warehouse"]))
    con.executemany(
        "insert into raw.erasure_requests values (?, ?, ?, ?, ?, timestamp '2026-06-02 00:00:00', "
        "'test', 'privacy/erasure_requests_20260602.csv', date '2026-06-02', 2)",
        requests,
    )
    apply_erasure_requests(con, datetime(2026, 6, 2, 9, 0))
    return con


def test_a_request_by_a_shared_phone_alone_erases_nobody_and_needs_review(erased, tmp_path):
    con = apply_to_run_one(erased, tmp_path, [("R-PHONE", None, "0113 496 0000", None, None)])
    assert con.execute(
        "select status, matched_by, completed_at, records_erased, identifiers_suppressed from privacy.erasure_log"
    ).fetchall() == [("needs_review", "phone", None, 0, 0)]
    assert con.execute("select count(*) from privacy.suppressed_identifiers").fetchall() == [(0,)]
    assert con.execute(
        "select count(*) from raw.web_customers where account_id in ('WP1', 'WQ1')"
    ).fetchall() == [(2,)]
    # Kept for the steward who settles it.
    assert con.execute("select phone from raw.erasure_requests").fetchall() == [("0113 496 0000",)]


def test_e_mail_and_shared_phone_erase_p_only_and_never_list_q_s_phone(erased, tmp_path):
    con = apply_to_run_one(erased, tmp_path, [("R-BOTH", P["email"], "0113 496 0000", None, None)])
    assert con.execute(
        "select status, records_erased, customers_erased from privacy.erasure_log"
    ).fetchall() == [("completed", 3, 1)]
    assert con.execute("select account_id from raw.web_customers order by 1").fetchall() == [
        ("WA1",),
        ("WB1",),
        ("WC1",),
        ("WQ1",),
    ]
    # The landline Q holds is not listed: Q's future rows still load.
    assert con.execute(
        "select kind, count(*) from privacy.suppressed_identifiers group by 1 order by 1"
    ).fetchall() == [("email", 1), ("phone", 1), ("record", 3)]
    assert con.execute(
        "select count(*) from identity.source_records where source_record_id in ('WP1', 'UP1', 'SP1')"
    ).fetchall() == [(0,)]
    assert con.execute(
        "select count(*) from identity.source_records where source_record_id = 'WQ1'"
    ).fetchall() == [(1,)]
    con.close()


def test_the_check_finds_an_erased_person_put_back(erased, tmp_path):
    from assets.privacy.erasure_check import erasure_leftovers
    from assets.shared.pseudonyms import load_salt, set_salt
    from assets.shared.warehouse import connect
    from assets.staging.standardizers import register_udfs

    copy = tmp_path / "published.duckdb"
    copy.write_bytes(erased["warehouse"].read_bytes())
    con = connect(copy)
    register_udfs(con, "GB")
    set_salt(con, load_salt(erased["warehouse"]))
    assert erasure_leftovers(con) == []
    con.execute(
        "insert into raw.store_members values ('SP1', 'X', 'Y', '07700 900461', null, null, null, null, 'd', 'f', date '2026-06-01', 9)"
    )
    con.execute(
        "update staging.web_customers set email = ? where source_record_id = 'WA1'", [P["email"]]
    )
    assert erasure_leftovers(con) == [
        "raw.store_members.phone: 1 rows carry an erased person's e-mail or phone",
        "raw.store_members.card_number: 1 rows of an erased record",
        "staging.web_customers.email: 1 rows carry an erased person's e-mail or phone",
    ]
    con.close()


def test_a_request_naming_nobody_is_completed_with_nothing_erased(erased, tmp_path):
    con = apply_to_run_one(
        erased, tmp_path, [("R-NOBODY", "nobody.here@example.com", None, None, None)]
    )
    assert con.execute(
        "select status, matched_by, records_erased, identifiers_suppressed from privacy.erasure_log"
    ).fetchall() == [("completed", "none", 0, 1)]
    assert con.execute("select count(*) from raw.web_customers").fetchall() == [(5,)]
