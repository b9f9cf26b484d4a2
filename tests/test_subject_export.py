"""`omniloyal subject-export` on a hand-built warehouse, its JSON read back with json.load.

The people (identity by hand):
    C1  Ann: web account W1 (e-mail ann@example.com, phone 07911 123456) and store card S1.
        W1 opted in to marketing e-mails in the 2026-01-01 delivery and out in 2026-01-05's.
        Ledger: earn 100, bonus 50, redeem -30 -> balance 120. One tier change (Silver).
        One purchase of 12.50.
    C2  Bob: store card S2 sharing Ann's phone (a household), web account W2 (bob@example.com).
The warehouse is built twice, as two runs would: after the first delivery the exports of
2026-01-02 are written (Ann is in the e-mail file of RFM Champions, in Google's hashed-only
file and Meta's); after the second, those of 2026-01-06 (Ann withdrew: she is in no e-mail file).
"""

import json
import os
import stat
from datetime import date

import pytest

from assets.exports.segment_files import write_segment_exports
from assets.ingest.contract import source_priority
from assets.ingest.deliveries import ingest_inbox
from assets.loyalty.program import load_program
from assets.shared.catalog import documented_tables
from assets.shared.warehouse import MACROS_FILE, connect, run_model
from assets.staging.standardizers import register_udfs
from pipelines.cli import main

WEB_HEADER = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in\n"
STORE_HEADER = (
    "card_number,first_name,last_name,phone,postcode,date_of_birth,enrolled_on,store_id\n"
)
ANN_VALUES = ("ann@example.com", "+447911123456", "Ann", "Lee", "SW1A 1AA", "1 High St")

RECORDS = [("web", "W1", "C1"), ("store", "S1", "C1"), ("store", "S2", "C2"), ("web", "W2", "C2")]
LEDGER = [
    ("e1", "C1", "earn", "purchase", 100, "2026-01-02 10:00:00"),
    ("e2", "C1", "bonus", "enrolment", 50, "2026-01-03 10:00:00"),
    ("e3", "C1", "redeem", "redemption", -30, "2026-01-04 10:00:00"),
    ("e4", "C2", "earn", "purchase", 10, "2026-01-02 11:00:00"),
]


def create_documented(con, table: str) -> None:
    """An empty table with exactly the documented columns and types (schemas/warehouse/)."""
    columns = ", ".join(f'"{c.name}" {c.type}' for c in documented_tables()[table])
    con.execute(f"create or replace table {table} ({columns})")


def build_core(con, inbox) -> None:
    """What a run does up to core, identity by hand."""
    ingest_inbox(con, inbox)
    for model in ("web_customers", "app_users", "store_members", "callcenter_contacts"):
        run_model(con, f"staging/{model}")
    create_documented(con, "identity.source_records")
    con.executemany(
        "insert into identity.source_records by name "
        "select ? as source, ? as source_record_id, ? as customer_id, "
        "date '2026-01-01' as id_assigned_on, 2 as records_in_customer",
        RECORDS,
    )
    for model in ("customers", "customer_records", "consent_history"):
        run_model(con, f"core/{model}")


def build_loyalty_and_marts(con) -> None:
    create_documented(con, "core.events")
    con.execute(
        "insert into core.events by name select 'web:O1' as event_id, 'C1' as customer_id, "
        "'web' as channel, 'O1' as source_event_id, 'W1' as source_record_id, "
        "'purchase' as event_type, 'completed' as status, timestamp '2026-01-02 10:00:00' as occurred_at, "
        "date '2026-01-02' as occurred_on, 12.50 as amount, true as is_completed_purchase"
    )
    create_documented(con, "loyalty.ledger")
    con.executemany(
        "insert into loyalty.ledger by name select ? as entry_id, ? as customer_id, ? as entry_type, "
        "? as rule, ? as points, cast(? as timestamp) as occurred_at, 'web' as source",
        LEDGER,
    )
    create_documented(con, "loyalty.balances")
    con.execute(
        "insert into loyalty.balances by name select customer_id, sum(points) as points_balance, "
        "case customer_id when 'C1' then 'Silver' else 'Bronze' end as tier "
        "from loyalty.ledger group by customer_id"
    )
    create_documented(con, "loyalty.tier_history")
    con.execute(
        "insert into loyalty.tier_history by name select 'C1' as customer_id, 'Silver' as tier, "
        "2 as tier_rank, 1.25 as earn_multiplier, timestamp '2026-01-03 00:00:00' as valid_from, "
        "'upgrade' as change"
    )
    create_documented(con, "marts.segments")
    con.execute(
        "insert into marts.segments by name select * from (values "
        "('C1', date '2026-01-02', 'Champions', 12.50), ('C2', date '2026-01-02', 'Hibernating', 0.00)"
        ") as t(customer_id, as_of_on, rfm_segment, historical_value)"
    )
    create_documented(con, "marts.segment_memberships")
    con.execute(
        "insert into marts.segment_memberships values "
        "('C1', 'rfm', 'Champions'), ('C1', 'lifecycle', 'new'), ('C2', 'rfm', 'Hibernating')"
    )
    # Issue 17's programs: Ann bought a plan, a partner sale matched her, she was held out
    # of a campaign, and Bob signed up with her code (rewarded: 500 to her, 250 to him).
    create_documented(con, "loyalty.memberships")
    con.execute(
        "insert into loyalty.memberships by name select 'O9' as order_id, 'C1' as customer_id, "
        "'Plus Monthly' as plan, 4.99 as fee, timestamp '2026-01-02 09:00' as paid_at, 'active' as status"
    )
    create_documented(con, "loyalty.partner_transactions")
    con.execute(
        "insert into loyalty.partner_transactions by name select 'T1' as partner_txn_id, "
        "'FuelUp' as partner, 'C1' as customer_id, true as is_matched, 30.00 as amount, 30 as points, "
        "timestamp '2026-01-02 08:00' as occurred_at"
    )
    create_documented(con, "loyalty.campaign_assignments")
    con.execute(
        "insert into loyalty.campaign_assignments by name select 'Spring' as campaign, "
        "'C1' as customer_id, 'holdout' as arm"
    )
    create_documented(con, "loyalty.referrals")
    con.execute(
        "insert into loyalty.referrals by name select 'web:W2' as referral_id, "
        "'C1' as referrer_customer_id, 'C2' as referred_customer_id, "
        "timestamp '2025-02-01 00:00' as registered_at, 'rewarded' as status, "
        "500 as referrer_points, 250 as referred_points"
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("subject")
    inbox, exports = root / "inbox", root / "exports"
    (inbox / "web").mkdir(parents=True)
    (inbox / "store").mkdir()
    (inbox / "web" / "customers_20260101.csv").write_text(
        WEB_HEADER
        + "W1,Ann@Example.com,Ann,Lee,07911 123456,1980-02-03,1 High St,London,SW1A 1AA,GB,2025-01-01T00:00:00Z,true\n"
        + "W2,bob@example.com,Bob,Lee,,,,,,GB,2025-02-01T00:00:00Z,true\n"
    )
    (inbox / "store" / "members_20260101.csv").write_text(
        STORE_HEADER
        + "S1,Ann,Lee,+44 7911 123456,SW1A 1AA,03/02/1980,2024-05-05,ST1\n"
        + "S2,Bob,Lee,07911123456,SW1A 1AA,03/03/1978,2024-06-06,ST1\n"
    )
    program = load_program()
    warehouse = root / "omniloyal.duckdb"
    con = connect(
        warehouse, {"as_of": date(2026, 1, 2), "source_priority": list(source_priority())}
    )
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    build_core(con, inbox)
    build_loyalty_and_marts(con)
    write_segment_exports(con, program, exports, date(2026, 1, 2))
    for platform in ("google", "meta"):
        write_segment_exports(
            con, program, exports, date(2026, 1, 2), ("csv",), only="Champions", platform=platform
        )
    # The second delivery: Ann withdraws her consent.
    (inbox / "web" / "customers_20260105.csv").write_text(
        WEB_HEADER
        + "W1,ann@example.com,Ann,Lee,07911 123456,1980-02-03,1 High St,London,SW1A 1AA,GB,2025-01-01T00:00:00Z,false\n"
    )
    build_core(con, inbox)
    write_segment_exports(con, program, exports, date(2026, 1, 6))
    con.close()
    return root


def export(workspace, *who: str, out_name: str = "subject.json") -> tuple[int, str]:
    out = workspace / out_name
    code = main(
        [
            "subject-export",
            *who,
            "--warehouse",
            str(workspace / "omniloyal.duckdb"),
            "--exports",
            str(workspace / "exports"),
            "--out",
            str(out),
        ]
    )
    return code, out


@pytest.fixture(scope="module")
def ann(workspace):
    code, out = export(workspace, "--email", "  ANN@example.com ", out_name="ann.json")
    assert code == 0
    with open(out, encoding="utf-8") as handle:
        return json.load(handle)


def test_the_person_is_found_by_email_with_exactly_their_records(ann):
    assert ann["format"] == "omniloyal-subject-export/1"
    assert ann["customers_found"] == 1 and ann["note"] is None
    (customer,) = ann["customers"]
    assert customer["customer_id"] == "C1"
    assert [(r["source"], r["source_record_id"]) for r in customer["source_records"]] == [
        ("store", "S1"),
        ("web", "W1"),
    ]
    # Unmasked: it is for the person.
    assert customer["profile"]["email"] == "ann@example.com"
    assert customer["profile"]["phone_e164"] == "+447911123456"
    # Each profile value with its source: the e-mail from the web, updated by the second delivery.
    assert (customer["profile"]["email_source"], customer["profile"]["email_updated_on"]) == (
        "web",
        "2026-01-05",
    )
    # Every delivered row of her records: W1 twice, S1 once, as delivered.
    assert [(r["source"], r["row"]["_delivered_on"]) for r in customer["delivered_rows"]] == [
        ("web", "2026-01-01"),
        ("web", "2026-01-05"),
        ("store", "2026-01-01"),
    ]
    assert customer["delivered_rows"][0]["row"]["email"] == "Ann@Example.com"


def test_consent_history_shows_both_statements_in_order(ann):
    (customer,) = ann["customers"]
    assert [
        (s["channel"], s["is_consented"], s["source_record_id"], s["stated_at"], s["is_in_effect"])
        for s in customer["consent_history"]
    ] == [
        ("email", True, "W1", "2026-01-01T00:00:00", False),
        ("email", False, "W1", "2026-01-05T00:00:00", True),
    ]
    assert customer["profile"]["has_email_consent"] is False
    assert customer["profile"]["email_consent_stated_at"] == "2026-01-05T00:00:00"


def test_ledger_entries_and_balance(ann):
    (customer,) = ann["customers"]
    assert [(e["entry_id"], e["points"], e["occurred_at"]) for e in customer["ledger"]] == [
        ("e1", 100, "2026-01-02T10:00:00"),
        ("e2", 50, "2026-01-03T10:00:00"),
        ("e3", -30, "2026-01-04T10:00:00"),
    ]
    assert (
        customer["balance"]["points_balance"] == 120 == sum(e["points"] for e in customer["ledger"])
    )
    assert [(t["tier"], t["change"], t["valid_from"]) for t in customer["tier_history"]] == [
        ("Silver", "upgrade", "2026-01-03T00:00:00")
    ]
    # Decimals as text, exactly as held.
    assert [(e["event_id"], e["amount"]) for e in customer["events"]] == [("web:O1", "12.50")]
    assert customer["segments"]["historical_value"] == "12.50"


def test_segments_and_the_exports_she_appeared_in(ann):
    (customer,) = ann["customers"]
    assert customer["segments"]["rfm_segment"] == "Champions"
    assert [(m["segmentation"], m["segment"]) for m in customer["segment_memberships"]] == [
        ("lifecycle", "new"),
        ("rfm", "Champions"),
    ]
    # Consented on 2026-01-02: the plain e-mail files of her segments (by customer_id), Google's file (by
    # the hash of her e-mail or phone) and Meta's (by extern_id). Withdrawn by 2026-01-06: none.
    assert [
        (a["as_of"], a["segment"], a["platform"], os.path.basename(a["file"]))
        for a in customer["exports"]
    ] == [
        ("2026-01-02", "new", None, "lifecycle_new.parquet"),
        ("2026-01-02", "Champions", "google", "rfm_champions.google.csv"),
        ("2026-01-02", "Champions", "meta", "rfm_champions.meta.csv"),
        ("2026-01-02", "Champions", None, "rfm_champions.parquet"),
    ]


def test_memberships_partner_sales_campaigns_and_referrals_on_either_side(workspace, ann):
    (customer,) = ann["customers"]
    assert [(m["order_id"], m["plan"], m["status"]) for m in customer["memberships"]] == [
        ("O9", "Plus Monthly", "active")
    ]
    assert [(s["partner_txn_id"], s["points"]) for s in customer["partner_sales"]] == [("T1", 30)]
    assert [(c["campaign"], c["arm"]) for c in customer["campaigns"]] == [("Spring", "holdout")]
    # Her side of Bob's referral: her role and points, not Bob's id or record.
    (referral,) = customer["referrals"]
    assert (referral["role"], referral["status"], referral["points"]) == (
        "referrer",
        "rewarded",
        500,
    )
    assert "C2" not in json.dumps(referral) and "W2" not in json.dumps(referral)
    code, out = export(workspace, "--customer-id", "C2", out_name="bob.json")
    assert code == 0
    with open(out, encoding="utf-8") as handle:
        (bob,) = json.load(handle)["customers"]
    assert [(r["role"], r["points"]) for r in bob["referrals"]] == [("referred", 250)]
    assert bob["memberships"] == [] and bob["partner_sales"] == [] and bob["campaigns"] == []


def test_the_file_is_for_its_owner_only_and_the_command_prints_no_value(workspace, capsys):
    stale = workspace / "stale.json"
    stale.write_text("{}")
    stale.chmod(0o644)
    code, out = export(workspace, "--customer-id", "C1", out_name="stale.json")
    assert code == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    printed = capsys.readouterr()
    assert "ledger entries" in printed.out and " 3" in printed.out
    for value in ANN_VALUES:
        assert value.lower() not in (printed.out + printed.err).lower()
    # No partial file left beside it.
    assert sorted(p.name for p in workspace.iterdir() if p.name.startswith(".")) == []


def test_a_shared_phone_finds_each_customer_and_says_so(workspace, capsys):
    code, out = export(workspace, "--phone", "0044 7911 123456", out_name="phone.json")
    assert code == 0
    with open(out, encoding="utf-8") as handle:
        found = json.load(handle)
    assert [c["customer_id"] for c in found["customers"]] == ["C1", "C2"]
    assert found["customers_found"] == 2 and "2 customers" in found["note"]
    # Each customer's own ledger only.
    assert [len(c["ledger"]) for c in found["customers"]] == [3, 1]
    assert "2 customers match" in capsys.readouterr().out


def test_an_unknown_person_is_a_one_line_error_and_no_file(workspace, capsys):
    code, out = export(workspace, "--email", "nobody@example.com", out_name="nobody.json")
    assert code == 2
    err = capsys.readouterr().err
    assert err == "omniloyal subject-export: no customer with that e-mail in the warehouse\n"
    assert not out.exists()


def test_bad_arguments_are_refused_before_the_warehouse_is_read(workspace, capsys):
    code, _ = export(workspace, "--phone", "12")
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1
    code = main(
        [
            "subject-export",
            "--email",
            "a@b.c",
            "--warehouse",
            str(workspace / "omniloyal.duckdb"),
            "--out",
            str(workspace / "missing" / "x.json"),
        ]
    )
    assert code == 2
    assert "folder that does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: exactly one of --email, --phone, --customer-id
        main(["subject-export", "--email", "a@b.c", "--customer-id", "C1", "--out", "x.json"])
