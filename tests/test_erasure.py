"""Erasure end to end, on a hand-built inbox of a handful of people, two runs and an ingestion:

1. P has a web account, an app user, a store card and a call-center contact (one customer
   through identity); Q, another person, shares P's landline (a household phone). Both buy
   things. After run 1, P's segment is also exported for Google and Meta (`omniloyal export`).
2. A request to be forgotten arrives by P's e-mail (written by `omniloyal forget`); run 2
   applies it, publishes, then scrubs the copies outside the build (erased_from_copies).
3. The web shop re-sends P's old account row and a new order of P's account: ingested by
   the ingestion step's own function into a copy of the published warehouse (a third
   pipeline run would cost 20 s and prove nothing more about the filter).

What is proved: after run 2 no value of P's is in any file the runs wrote (the published
main and analytics files, the version run 2 moved to previous/, builds, exports of both
dates and their manifests, HTML reports and identity charts, Dagster's own storage), the
same search finding them there after run 1; the request file is gone from the inbox; Dagster
events and logs carry none of P's values; Q is untouched, P's ledger entries stay under a
pseudonymous id closed to 0 by an 'erasure' entry, privacy.erasure_log counts the request;
in run 3 P's rows are dropped at ingestion and counted, and rows read = loaded +
quarantined + suppressed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.cli import main
from pipelines.forget import write_request

# Two pipeline runs (before and after the request): in `make test-slow`, which CI runs after `make test`.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

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
CONTACTS_HEADER = (
    "contact_id,caller_name,phone,email,contacted_at,reason,resolution,csat,goodwill_points"
)
CONTACTS = [
    "CP1,Perpetua Zandvoort,07700 900461,perpetua.zandvoort@example.org,2026-05-10T10:00:00Z,billing,resolved,4,50",
    'CA1,"Boyce, Alma",07700 900111,alma.boyce@example.com,2026-05-11T10:00:00Z,delivery,resolved,5,0',
]
P_RECORDS = ("WP1", "UP1", "SP1", "CP1")
# Partner sales (partners of the bundled program): P's by a messy e-mail and by P's mobile,
# Alma's by her mobile. Not customer records: erased because they carry P's e-mail and phone.
PARTNER_HEADER = "partner_txn_id,partner,email,phone,occurred_at,amount"
PARTNER_SALES = [
    "XP1,FuelUp, Perpetua.Zandvoort@Example.org ,,2026-05-20T10:00:00Z,40.00",
    "XP2,Corner Cafe,,07700 900461,2026-05-21T10:00:00Z,12.00",
    "XA1,FuelUp,,07700 900111,2026-05-22T10:00:00Z,20.00",
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
            "where source_record_id in ('WP1', 'UP1', 'SP1', 'CP1')",
        ),
        "p_found": hits(warehouse, [P["email"], P["last_name"]]),
        "p_ledger_points": query(
            warehouse,
            "select sum(points) from loyalty.ledger join identity.source_records using (customer_id) "
            "where source_record_id = 'WP1'",
        )[0][0],
    }


def export_for_ad_platforms(tmp: Path, segment: str) -> None:
    """P's segment as Google and Meta files in the first run's export folder."""
    for platform in ("google", "meta"):
        code = main(
            [
                "export",
                "--segment",
                segment,
                "--for",
                platform,
                "--warehouse",
                str(tmp / "w" / "omniloyal.duckdb"),
                "--exports",
                str(tmp / "x"),
            ]
        )
        assert code == 0


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
    write(inbox, "callcenter/contacts_20260601.csv", [CONTACTS_HEADER, *CONTACTS])
    write(inbox, "partner/earnings_20260601.csv", [PARTNER_HEADER, *PARTNER_SALES])
    warehouse = tmp / "w" / "omniloyal.duckdb"
    run(tmp, AS_OF[0])
    before = snapshot(warehouse)
    (p_customer,) = before["p_customers"]
    p_segment = query(
        warehouse,
        "select segment from marts.segment_memberships where customer_id = ? order by all limit 1",
        [p_customer[0]],
    )[0][0]
    export_for_ad_platforms(tmp, p_segment)
    (tmp / "run1.duckdb").write_bytes(warehouse.read_bytes())  # for the household cases below

    path, request_id = write_request(
        inbox,
        email=P["email"].upper(),  # as a person types it: standardized like the records
        request_id="REQ-1",
        now=datetime(2026, 6, 2, 8, 30, tzinfo=UTC),
    )
    request_bytes = path.read_bytes()
    traces = p_traces(warehouse, p_customer[0])
    found_after_run_1 = found_in_files(tmp, traces)

    # Run 2 keeps its Dagster events in an instance of its own, to be searched afterwards.
    dagster_home = tmp / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(dagster_home))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            run(tmp, AS_OF[1])
        instance = dg.DagsterInstance.get()
        (run_record,) = instance.get_run_records()
        logs = instance.all_logs(run_record.dagster_run.run_id)
        instance.dispose()
    after = snapshot(warehouse)
    erased_state = {
        "log": query(warehouse, "select * from privacy.erasure_log"),
        "erased_records": query(
            warehouse,
            "select source, source_record_id, erased_customer_id from privacy.erased_records order by all",
        ),
        "erased_customers": query(
            warehouse, "select customer_id, request_id from privacy.erased_customers order by all"
        ),
    }
    return {
        "printed": printed.getvalue(),
        "tmp": tmp,
        "warehouse": warehouse,
        "analytics": warehouse.with_name("omniloyal_analytics.duckdb"),
        "before": before,
        "after": after,
        "request_file": path,
        "request_id": request_id,
        "request_bytes": request_bytes,
        "p_customer": p_customer[0],
        "p_segment": p_segment,
        "traces": traces,
        "found_after_run_1": found_after_run_1,
        "found_after_run_2": found_in_files(tmp, traces),
        "logs": logs,
        **erased_state,
    }


def hits(
    path: Path, needles: list[str], keys: list[str] = (), skip_for_keys: tuple[str, ...] = ()
) -> dict[str, int]:
    """Every text and date column of every table of a DuckDB file, searched set-based (one
    query per table, case-insensitive substring) for any of the needles, and outside the
    schemas `skip_for_keys` for any of `keys` too; table.column -> rows."""

    def pattern(values) -> str:
        escaped = "|".join(re.escape(value.lower()) for value in values)
        return "'" + escaped.replace("'", "''") + "'"

    found = {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "select schema_name, table_name, list(column_name order by column_index) "
            "from duckdb_columns() where database_name = current_database() and not internal "
            "and (data_type = 'VARCHAR' or data_type = 'DATE') group by all order by all"
        ).fetchall()
        for schema, table, columns in tables:
            searched = needles + (list(keys) if schema not in skip_for_keys else [])
            counts = ", ".join(
                f'count(*) filter (where regexp_matches(lower(cast(t."{c}" as varchar)), {pattern(searched)}))'
                for c in columns
            )
            row = con.execute(f'select {counts} from "{schema}"."{table}" as t').fetchall()[0]
            found |= {f"{schema}.{table}.{c}": n for c, n in zip(columns, row) if n}
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


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def p_traces(warehouse: Path, p_customer: str) -> dict[str, list[str]]:
    """What would give P away, by where it may be looked for.

    plain: P's values as delivered and standardized (birth date in the three sources' forms);
    keys: what points to P without a plain value: the customer id of run 1 (it went out in
    exports and to Meta as extern_id), the salted hashes of the analytics file, the plain
    SHA-256 ad platforms receive. The privacy.* tables keep P's old ids and salted hashes on
    purpose (the suppression list), so keys are not looked for there. The landline Q still
    holds is in neither list."""
    from assets.shared.pseudonyms import load_salt, pseudonym

    salt = load_salt(warehouse)
    keys = [p_customer]
    keys += [pseudonym(value, salt) for value in (P["email"], P["mobile"])]
    keys += [
        sha256(value)
        for value in (P["email"], P["mobile"], P["mobile"].lstrip("+"), "perpetua", "zandvoort")
    ]
    return {"plain": [*P_VALUES, "05/04/1971", "04/05/1971"], "keys": keys}


def found_in_files(tmp: Path, traces: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every file the runs wrote (warehouse folder, exports, reports, Dagster's storage) and the
    inbox's request folder, searched for P: file (relative to tmp) -> what was found where.

    DuckDB files: every text and date column of every table, set-based (hits); Parquet files:
    every column as text, in one query; any other file (CSV, JSON manifests, HTML reports and
    charts, logs): its text, case-insensitive."""
    needles = traces["plain"] + traces["keys"]
    found: dict[str, list[str]] = {}
    roots = [tmp / "w", tmp / "x", tmp / "r", tmp / "inbox" / "privacy", tmp / "dagster_home"]
    for path in sorted(p for root in roots if root.is_dir() for p in root.rglob("*")):
        if not path.is_file():
            continue
        where = str(path.relative_to(tmp))
        if path.suffix == ".duckdb":
            places = list(hits(path, traces["plain"], traces["keys"], ("privacy",)))
            # The file's bytes too: DuckDB marks deleted rows and reuses their blocks without
            # wiping them, so a value no query returns can still be read off the disk.
            data = path.read_bytes()
            places += [
                f"bytes: {value}"
                for value in traces["plain"]
                if value.encode() in data or value.lower().encode() in data
            ]
            if places:
                found[where] = sorted(places)
        elif path.suffix == ".parquet":
            with duckdb.connect() as con:
                (n,) = con.execute(
                    # A row as text: {'customer_id': ..., 'email': ...}
                    "select count(distinct rows.line) from (select lower(cast(t as varchar)) as line "
                    "from read_parquet(?) as t) as rows, (select lower(unnest(?::varchar[])) as needle) "
                    "where contains(rows.line, needle)",
                    [str(path), needles],
                ).fetchall()[0]
            if n:
                found[where] = [f"{n} rows"]
        else:
            text = path.read_bytes().decode("utf-8", errors="replace").lower()
            hit = sorted({needle for needle in needles if needle.lower() in text})
            if hit:
                found[where] = hit
    return found


def test_before_the_request_p_is_one_customer_of_four_records(erased):
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


def test_after_run_1_the_search_finds_p_in_every_kind_of_file(erased):
    """The search below finds what it looks for: P is in each kind of file after run 1."""
    found = erased["found_after_run_1"]
    segment = erased["p_segment"].lower()
    request = f"inbox/{erased['request_file'].relative_to(erased['tmp'] / 'inbox')}"
    assert set(found) >= {
        "w/omniloyal.duckdb",
        "w/omniloyal_analytics.duckdb",  # salted hashes and the customer id
        f"x/2026-06-01/rfm_{segment}.csv",
        f"x/2026-06-01/rfm_{segment}.parquet",
        f"x/2026-06-01/rfm_{segment}.google.csv",  # plain SHA-256 (and the postcode)
        f"x/2026-06-01/rfm_{segment}.meta.csv",  # extern_id: the customer id
        "r/identity/2026-06-01/cluster_studio.html",
        request,
    }
    assert "perpetua.zandvoort@example.org" in found["w/omniloyal.duckdb"] or any(
        place.endswith(".email") for place in found["w/omniloyal.duckdb"]
    )
    assert erased["p_customer"] in found[f"x/2026-06-01/rfm_{segment}.meta.csv"]
    assert sha256(P["email"]) in found[f"x/2026-06-01/rfm_{segment}.google.csv"]
    assert P["last_name"] in found[f"x/2026-06-01/rfm_{segment}.csv"]


def test_after_run_2_no_file_the_runs_wrote_holds_p(erased):
    """Every file under the warehouse, exports and reports folders, Dagster's storage and the
    inbox's request folder: none of P's plain values, hashes or old customer id."""
    tmp = erased["tmp"]
    assert erased["found_after_run_2"] == {}
    # What was searched: the version run 2 moved to previous/ (main and analytics), both
    # export dates, both reports and the identity charts of both dates.
    previous = sorted(p.name for p in (tmp / "w" / "previous").iterdir())
    assert [name.split("-")[0] for name in previous] == ["omniloyal", "omniloyal_analytics"]
    assert {p.name for p in (tmp / "x").iterdir()} == {"2026-06-01", "2026-06-02"}
    assert {"2026-06-01.html", "2026-06-02.html", "latest.html"} <= {
        p.name for p in (tmp / "r").iterdir()
    }
    # Splink's record-level charts of run 1 are gone, its model-level ones stay; run 2's stay.
    assert sorted(p.name for p in (tmp / "r" / "identity" / "2026-06-01").iterdir()) == [
        "m_u_parameters.html",
        "match_weights.html",
        "splink_model.json",
    ]
    assert (tmp / "r" / "identity" / "2026-06-02" / "cluster_studio.html").is_file()
    # The request file is gone from the inbox; nothing else is in its folder.
    assert not erased["request_file"].exists()
    assert list((tmp / "inbox" / "privacy").iterdir()) == []
    assert not (tmp / "w" / "builds").exists() or list((tmp / "w" / "builds").iterdir()) == []


def test_the_previous_version_keeps_the_erasure_and_q(erased):
    """A rollback to run 1's version would keep P erased (its privacy tables came with the
    scrub) and Q as run 1 left them."""
    (old,) = (erased["tmp"] / "w" / "previous").glob("omniloyal-*.duckdb")
    assert query(old, "select request_id, status from privacy.erasure_log") == [
        ("REQ-1", "completed")
    ]
    # The e-mail, the mobile, four record ids and the keys of two partner sales.
    assert query(old, "select count(*) from privacy.suppressed_identifiers") == [(8,)]
    q = erased["before"]["q_customer"]
    assert query(
        old,
        "select source, source_record_id from identity.source_records where customer_id = ?",
        [q],
    ) == [("web", "WQ1")]
    assert query(
        old,
        "select count(*) from identity.source_records where source_record_id in ?",
        [list(P_RECORDS)],
    ) == [(0,)]
    # P's ledger entries of run 1 stay, under the pseudonymous id, not the old customer id.
    (pseudo,) = {x for _, _, x in erased["erased_records"]}
    assert (
        query(old, "select count(*) from loyalty.ledger where customer_id = ?", [pseudo])[0][0] > 0
    )
    assert query(
        old, "select count(*) from loyalty.ledger where customer_id = ?", [erased["p_customer"]]
    ) == [(0,)]


def test_run_1_exports_lose_p_and_their_manifest_says_what_went(erased):
    folder = erased["tmp"] / "x" / "2026-06-01"
    segment = erased["p_segment"].lower()
    manifest = json.loads((folder / "manifest.json").read_text())
    # The Google file holds plain SHA-256 only: it cannot be scrubbed row by row, so it went.
    assert not (folder / f"rfm_{segment}.google.csv").exists()
    assert [(r["segment"], r["platform"]) for r in manifest["removed_by_erasure"]] == [
        (erased["p_segment"], "google")
    ]
    listed = {spec["file"] for entry in manifest["files"] for spec in entry["files"].values()}
    assert f"rfm_{segment}.meta.csv" in listed and f"rfm_{segment}.csv" in listed
    for entry in manifest["files"]:
        for spec in entry["files"].values():
            data = (folder / spec["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == spec["sha256"], spec["file"]


def dagster_text(logs) -> str:
    return "\n".join(entry.message for entry in logs) + "\n".join(
        str(entry.dagster_event.event_specific_data) for entry in logs if entry.dagster_event
    )


def test_dagster_events_and_logs_of_run_2_carry_no_value_of_p(erased):
    text = dagster_text(erased["logs"]).lower()
    # The text searched is the run's: its steps, metadata and the erasure's own report.
    assert "erased_from_copies" in text and "request_files_removed" in text
    assert "privacy.erased_customers" in text
    needles = erased["traces"]["plain"] + erased["traces"]["keys"]
    assert [needle for needle in needles if needle.lower() in text] == []


def test_erased_from_copies_reports_counts_and_its_check_passes(erased):
    logs = erased["logs"]
    (materialization,) = [
        entry.dagster_event.event_specific_data.materialization
        for entry in logs
        if entry.dagster_event
        and entry.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
        and entry.dagster_event.asset_key == dg.AssetKey("erased_from_copies")
    ]
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    request = str(erased["request_file"].relative_to(erased["tmp"] / "inbox"))
    assert metadata["requests_to_reach"] == 1
    assert metadata["request_files_removed"] == [request]
    assert metadata["previous_version_files_rewritten"] == 2  # run 1's main and analytics
    assert metadata["export_files_removed"] == [
        f"2026-06-01/rfm_{erased['p_segment'].lower()}.google.csv"
    ]
    assert metadata["export_files_rewritten"] >= 3  # P's segment as CSV, Parquet and Meta
    assert metadata["record_level_charts_removed"] == 2  # cluster studio and waterfall
    (check,) = [
        entry.dagster_event.event_specific_data
        for entry in logs
        if entry.dagster_event
        and entry.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
        and entry.dagster_event.event_specific_data.check_name == "erased_everywhere"
    ]
    assert check.passed and check.metadata["places_found"].value == 0
    assert check.metadata["files_searched"].value > 20
    reached = json.loads((erased["tmp"] / "w" / "omniloyal.erasures_reached.json").read_text())
    assert reached["requests"] == ["REQ-1"]


def test_erased_customers_lists_p_s_id(erased):
    assert erased["erased_customers"] == [(erased["p_customer"], "REQ-1")]


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
    assert [(s, r) for s, r, _ in records] == [
        ("app", "UP1"),
        ("callcenter", "CP1"),
        ("store", "SP1"),
        ("web", "WP1"),
    ]
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


def test_the_run_summary_says_what_was_erased(erased):
    assert (
        "requests to be forgotten (privacy.erasure_log): 1 completed, "
        "4 customer records erased; 0 need review"
    ) in erased["printed"]


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
    assert (log["customers_erased"], log["records_erased"]) == (1, 4)
    # The e-mail, P's mobile and four record ids; not the landline Q shares. And the keys of
    # P's two partner sales, by which the copies outside the build find them.
    assert log["identifiers_suppressed"] == 8
    assert log["tables_touched"] > 3 and log["rows_touched"] > 3
    kinds = query(
        erased["warehouse"],
        "select kind, count(*) from privacy.suppressed_identifiers group by 1 order by 1",
    )
    assert kinds == [("email", 1), ("phone", 1), ("record", 6)]
    # The request row keeps no e-mail once applied.
    assert query(erased["warehouse"], "select email, phone from raw.erasure_requests") == [
        (None, None)
    ]


def test_p_s_partner_sales_are_erased_and_alma_s_still_earns(erased):
    def sales(path: Path) -> list[tuple]:
        return query(
            path,
            "select t.partner_txn_id, t.is_matched, r.source_record_id from loyalty.partner_transactions as t "
            "left join identity.source_records as r on r.customer_id = t.customer_id and r.source = 'web' "
            "order by 1",
        )

    # Run 1: P's sale by the mobile matched P; the one by the e-mail matched nobody
    # (example.org is a reserved domain, blocked for matching) but carries P's e-mail all the same.
    assert sales(erased["tmp"] / "run1.duckdb") == [
        ("XA1", True, "WA1"),
        ("XP1", False, None),
        ("XP2", True, "WP1"),
    ]
    # Run 2: gone from raw (with their text), staging and loyalty; Alma's untouched.
    assert sales(erased["warehouse"]) == [("XA1", True, "WA1")]
    for table in ("raw.partner_earnings", "staging.partner_earnings"):
        assert query(erased["warehouse"], f"select partner_txn_id from {table}") == [("XA1",)]
    assert query(
        erased["warehouse"],
        "select rows_read, rows_loaded, rows_erased from raw.deliveries where file like 'partner/%'",
    ) == [(3, 3, 2)]


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
    # A partner re-sends P's sale (by the e-mail alone) beside a sale of Dora's.
    write(
        inbox,
        "partner/earnings_20260603.csv",
        [
            PARTNER_HEADER,
            "XP3,FuelUp,PERPETUA.ZANDVOORT@EXAMPLE.ORG,,2026-06-02T09:00:00Z,15.00",
            "XD1,FuelUp,dora.vale@example.com,,2026-06-02T09:30:00Z,5.00",
        ],
    )
    copy = tmp_path / "next_build.duckdb"
    copy.write_bytes(erased["warehouse"].read_bytes())
    con = connect(copy, {"as_of": datetime(2026, 6, 3).date()})
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    set_salt(con, load_salt(erased["warehouse"]))
    result = ingest_inbox(con, inbox)
    assert (result.rows_read, result.rows_loaded, result.rows_suppressed) == (6, 3, 3)
    run_model(con, "quality/source_summary")
    summary = con.execute(
        "select file, rows_read, rows_loaded, rows_quarantined, rows_suppressed from quality.source_summary "
        "where delivered_on = date '2026-06-03' order by file"
    ).fetchall()
    assert summary == [
        ("partner/earnings_20260603.csv", 2, 1, 0, 1),
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
    assert con.execute(
        "select partner_txn_id from raw.partner_earnings where _delivered_on = date '2026-06-03'"
    ).fetchall() == [("XD1",)]
    con.close()
    (inbox / "web/customers_20260603.csv").unlink()
    (inbox / "web/orders_20260603.csv").unlink()
    (inbox / "partner/earnings_20260603.csv").unlink()


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


def apply_to_run_one(
    erased, tmp_path, requests: list[tuple], id_history: list[tuple] = ()
) -> duckdb.DuckDBPyConnection:
    """The run-1 warehouse (P and Q both known to identity) with these requests delivered
    (and these (old, new, reason) rows added to identity.id_history), applied as the
    ingestion step applies them."""
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
    if id_history:
        con.executemany(
            "insert into identity.id_history (old_customer_id, new_customer_id, reason, records_moved, changed_on) "
            "values (?, ?, ?, 1, date '2026-05-01')",
            [list(row) for row in id_history],
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
    ).fetchall() == [("completed", 4, 1)]
    assert con.execute("select account_id from raw.web_customers order by 1").fetchall() == [
        ("WA1",),
        ("WB1",),
        ("WC1",),
        ("WQ1",),
    ]
    # The landline Q holds is not listed: Q's future rows still load. The records: P's four
    # and the keys of P's two partner sales.
    assert con.execute(
        "select kind, count(*) from privacy.suppressed_identifiers group by 1 order by 1"
    ).fetchall() == [("email", 1), ("phone", 1), ("record", 6)]
    assert con.execute(
        "select count(*) from identity.source_records where source_record_id in ('WP1', 'UP1', 'SP1', 'CP1')"
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


def test_erased_customers_follow_the_id_history_but_not_an_id_another_person_holds(
    erased, tmp_path
):
    """P's id came from C_OLDER, which came from C_OLDEST (merges); a split once moved records
    from Q's id to P's (Q's id lives on with Q: not listed). A cycle in the history ends."""
    p_id, q_id = erased["p_customer"], erased["before"]["q_customer"]
    history = [
        ("C_OLDER", p_id, "merged"),
        ("C_OLDEST", "C_OLDER", "merged"),
        (p_id, "C_OLDEST", "merged"),  # a cycle
        (q_id, p_id, "split"),
        ("C_UNRELATED", q_id, "merged"),
    ]
    con = apply_to_run_one(
        erased, tmp_path, [("R-HIST", P["email"], None, None, None)], id_history=history
    )
    try:
        assert con.execute(
            "select customer_id, request_id from privacy.erased_customers order by all"
        ).fetchall() == sorted([("C_OLDER", "R-HIST"), ("C_OLDEST", "R-HIST"), (p_id, "R-HIST")])
    finally:
        con.close()


def after_publish_settings(erased, tmp_path):
    """A copy of run 2's folders, and settings for erased_from_copies on it."""
    import shutil

    from assets.shared.settings import PipelineSettings

    for name in ("w", "x", "r", "inbox"):
        shutil.copytree(erased["tmp"] / name, tmp_path / name)
    return PipelineSettings(
        inbox_dir=str(tmp_path / "inbox"),
        warehouse_path=str(tmp_path / "w" / "omniloyal.duckdb"),
        exports_dir=str(tmp_path / "x"),
        reports_dir=str(tmp_path / "r"),
        as_of=AS_OF[1],
        phone_region="GB",
    )


def materialize_after_publish(settings, checks_only=False):
    from assets.privacy.assets import erased_from_copies, erased_people_found_nowhere

    result = dg.materialize(
        [erased_from_copies, erased_people_found_nowhere],
        resources={"settings": settings},
        instance=dg.DagsterInstance.ephemeral(),
        selection=dg.AssetSelection.checks_for_assets(erased_from_copies) if checks_only else None,
        raise_on_error=False,
    )
    materialized = [
        {key: value.value for key, value in m.metadata.items()}
        for m in result.asset_materializations_for_node("erased_from_copies")
    ]
    (check,) = result.get_asset_check_evaluations()
    return result, (materialized[0] if materialized else None), check


def test_a_later_run_does_nothing_but_an_applied_request_file_put_back_goes(erased, tmp_path):
    settings = after_publish_settings(erased, tmp_path)
    previous = sorted((tmp_path / "w" / "previous").iterdir())
    written = [path.stat().st_mtime_ns for path in previous]
    request = tmp_path / "inbox" / erased["request_file"].relative_to(erased["tmp"] / "inbox")
    request.write_bytes(erased["request_bytes"])  # the same file, delivered again

    result, metadata, check = materialize_after_publish(settings)

    assert result.success and check.passed
    assert metadata["requests_to_reach"] == 0 and "previous_version_files_rewritten" not in metadata
    assert [path.stat().st_mtime_ns for path in previous] == written
    assert check.metadata["files_searched"].value == 0
    assert metadata["request_files_removed"] == [str(request.relative_to(tmp_path / "inbox"))]
    assert not request.exists()

    # A new file under the old name is a new delivery: kept, and the check does not count it.
    request.write_text(
        "request_id,email,phone,source,source_record_id,received_at\nREQ-2,,,web,WA1,\n"
    )
    result, metadata, check = materialize_after_publish(settings)
    assert result.success and check.passed
    assert metadata["request_files_removed"] == [] and metadata["request_files_kept_changed"] == 1
    assert request.exists()


def test_without_the_record_the_search_runs_again_and_finds_an_unscrubbed_copy(erased, tmp_path):
    settings = after_publish_settings(erased, tmp_path)
    record = tmp_path / "w" / "omniloyal.erasures_reached.json"
    record.unlink()
    # Run 1's warehouse as it was, put back in previous/ (a restored backup, say).
    stray = tmp_path / "w" / "previous" / "omniloyal-20260601T000000000000Z.duckdb"
    stray.write_bytes((erased["tmp"] / "run1.duckdb").read_bytes())

    result, _, check = materialize_after_publish(settings, checks_only=True)

    assert not result.success and not check.passed
    found = check.metadata["found"].value
    assert f"{stray}: core.customers" in found and f"{stray}: raw.web_customers" in found
    assert not record.exists()
    shown = check.description + json.dumps(found)
    needles = erased["traces"]["plain"] + erased["traces"]["keys"]
    assert [needle for needle in needles if needle.lower() in shown.lower()] == []

    # The step itself scrubs it, and its check then passes and records the request.
    result, metadata, check = materialize_after_publish(settings)
    assert result.success and check.passed
    assert metadata["requests_to_reach"] == 1 and metadata["previous_version_files_rewritten"] == 1
    assert hits(stray, P_VALUES) == {}
    assert json.loads(record.read_text())["requests"] == ["REQ-1"]
