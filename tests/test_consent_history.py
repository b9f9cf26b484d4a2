"""core.consent_history on a hand-written inbox of four deliveries, built as a run builds it
(ingest, staging, core), and checked against core.customers and the export files.

Web accounts state e-mail marketing consent (marketing_opt_in), app users push consent
(push_opt_in); the statement is dated by its delivery. Customers (identity by hand):
    C1  W1 (web) + A1 (app)   e-mail: in on 01-01, out on 01-05; push: in on 01-03 and 01-08
    C2  W2                    in on 01-01 and 01-05, blank on 01-10 (nothing in effect)
    C3  W3 + W4               W3 out on 01-01; W4 blank on 01-01, in on 01-05
    C4  W5 + W6               both stated on 01-05, W5 in, W6 out: W6 registered later, so
                              it is the fresher record and its "out" is in effect
"""

import csv
import json
from datetime import date, datetime

import pytest

from assets.exports.segment_files import Audience, write_audience
from assets.ingest.contract import source_priority
from assets.ingest.deliveries import ingest_inbox
from assets.shared.warehouse import MACROS_FILE, connect, run_model
from assets.staging.standardizers import register_udfs

WEB_HEADER = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in\n"


def web_row(account: str, created: str, opt_in: str) -> str:
    return f"{account},{account.lower()}@example.com,Ann,Lee,,,,,,GB,{created}T00:00:00Z,{opt_in}\n"


def app_row(user: str, push: bool, name: str = "Ann Lee") -> str:
    return (
        json.dumps({"user_id": user, "name": name, "signup_ts": 1735689600000, "push_opt_in": push})
        + "\n"
    )


CUSTOMER_OF = {"W1": "C1", "A1": "C1", "W2": "C2", "W3": "C3", "W4": "C3", "W5": "C4", "W6": "C4"}


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    inbox = tmp_path_factory.mktemp("inbox")
    (inbox / "web").mkdir()
    (inbox / "app").mkdir()
    (inbox / "web" / "customers_20260101.csv").write_text(
        WEB_HEADER
        + web_row("W1", "2025-01-01", "true")
        + web_row("W2", "2025-01-01", "true")
        + web_row("W3", "2025-01-01", "false")
        + web_row("W4", "2025-01-01", "")
    )
    (inbox / "web" / "customers_20260105.csv").write_text(
        WEB_HEADER
        # W1 comes twice on 01-05: this file says in, the later file (by name) says out.
        + web_row("W1", "2025-01-01", "true")
        + web_row("W2", "2025-01-01", "true")
        + web_row("W4", "2025-01-01", "true")
        + web_row("W5", "2025-01-01", "true")
        + web_row("W6", "2025-06-01", "false")
    )
    (inbox / "web" / "customers_resent_20260105.csv").write_text(
        WEB_HEADER + web_row("W1", "2025-01-01", "false")
    )
    (inbox / "web" / "customers_20260110.csv").write_text(
        WEB_HEADER + web_row("W2", "2025-01-01", "")
    )
    (inbox / "app" / "users_20260103.jsonl").write_text(app_row("A1", True))
    # Not the same bytes as 01-03's file (a byte-identical file is a duplicate delivery, not read).
    (inbox / "app" / "users_20260108.jsonl").write_text(app_row("A1", True, name="Ann Lee-Fox"))

    con = connect(
        ":memory:", {"as_of": date(2026, 1, 31), "source_priority": list(source_priority())}
    )
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    ingest_inbox(con, inbox)
    for model in ("web_customers", "app_users", "store_members", "callcenter_contacts"):
        run_model(con, f"staging/{model}")
    con.execute(
        "create table identity.source_records (source varchar, source_record_id varchar, customer_id varchar)"
    )
    for record, customer in CUSTOMER_OF.items():
        source = "app" if record.startswith("A") else "web"
        con.execute(
            "insert into identity.source_records values (?, ?, ?)", [source, record, customer]
        )
    run_model(con, "core/customers")
    run_model(con, "core/consent_history")
    yield con
    con.close()


def rows(con, sql: str, params=()) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def at(day: int) -> datetime:
    return datetime(2026, 1, day)


def test_every_delivered_statement_is_kept_in_order(con):
    assert rows(
        con,
        "select customer_id, channel, source_record_id, is_consented, stated_at, delivered_on, "
        "source_file, is_change, is_in_effect from core.consent_history",
    ) == [
        (
            "C1",
            "email",
            "W1",
            True,
            at(1),
            date(2026, 1, 1),
            "web/customers_20260101.csv",
            True,
            False,
        ),
        # Two files on 01-05: one statement, from the later file, as staging reads it.
        (
            "C1",
            "email",
            "W1",
            False,
            at(5),
            date(2026, 1, 5),
            "web/customers_resent_20260105.csv",
            True,
            True,
        ),
        (
            "C1",
            "push",
            "A1",
            True,
            at(3),
            date(2026, 1, 3),
            "app/users_20260103.jsonl",
            True,
            False,
        ),
        # Re-stated unchanged: kept (it is the statement in effect), but no change.
        (
            "C1",
            "push",
            "A1",
            True,
            at(8),
            date(2026, 1, 8),
            "app/users_20260108.jsonl",
            False,
            True,
        ),
        # W2's blank on 01-10 states nothing; its current row is blank, so nothing is in effect.
        (
            "C2",
            "email",
            "W2",
            True,
            at(1),
            date(2026, 1, 1),
            "web/customers_20260101.csv",
            True,
            False,
        ),
        (
            "C2",
            "email",
            "W2",
            True,
            at(5),
            date(2026, 1, 5),
            "web/customers_20260105.csv",
            False,
            False,
        ),
        (
            "C3",
            "email",
            "W3",
            False,
            at(1),
            date(2026, 1, 1),
            "web/customers_20260101.csv",
            True,
            False,
        ),
        (
            "C3",
            "email",
            "W4",
            True,
            at(5),
            date(2026, 1, 5),
            "web/customers_20260105.csv",
            True,
            True,
        ),
        (
            "C4",
            "email",
            "W5",
            True,
            at(5),
            date(2026, 1, 5),
            "web/customers_20260105.csv",
            True,
            False,
        ),
        (
            "C4",
            "email",
            "W6",
            False,
            at(5),
            date(2026, 1, 5),
            "web/customers_20260105.csv",
            True,
            True,
        ),
    ]
    # Every source is the one named by its record.
    assert rows(con, "select distinct channel, source from core.consent_history order by 1") == [
        ("email", "web"),
        ("push", "app"),
    ]


def test_at_most_one_statement_per_customer_and_channel_is_in_effect(con):
    assert (
        rows(
            con,
            "select customer_id, channel, count(*) from core.consent_history "
            "where is_in_effect group by all having count(*) > 1",
        )
        == []
    )


def test_the_profile_relies_on_the_statement_in_effect(con):
    # Set-based over every customer and channel: the profile's consent, source and time are the
    # statement in effect's; without one, no consent and no source.
    disagreements = rows(
        con,
        """
        with in_effect as (select * from core.consent_history where is_in_effect),
        profile as (
            select customer_id, 'email' as channel, has_email_consent as has_consent,
                   email_consent_source as source, email_consent_stated_at as stated_at
            from core.customers
            union all
            select customer_id, 'push', has_push_consent, push_consent_source, push_consent_stated_at
            from core.customers
        )
        select profile.customer_id, profile.channel
        from profile
        left join in_effect using (customer_id, channel)
        where profile.has_consent is distinct from coalesce(in_effect.is_consented, false)
            or profile.source is distinct from in_effect.source
            or profile.stated_at is distinct from in_effect.stated_at
        """,
    )
    assert disagreements == []
    # And the hand-computed profile: C1 withdrew on 01-05, C2 has nothing in effect.
    assert rows(
        con,
        "select customer_id, has_email_consent, email_consent_stated_at, has_push_consent, "
        "push_consent_stated_at from core.customers order by 1",
    ) == [
        ("C1", False, at(5), True, at(8)),
        ("C2", False, None, False, None),
        ("C3", True, at(5), False, None),
        ("C4", False, at(5), False, None),
    ]


def test_exports_carry_the_time_of_the_statement_in_effect(con, tmp_path):
    # Every customer is in one segment; the files hold those whose statement in effect is
    # consent, with its stated_at as consent_stated_at.
    con.execute("create or replace table marts.segments as select customer_id from core.customers")
    con.execute(
        "create or replace table marts.segment_memberships as "
        "select customer_id, 'custom' as segmentation, 'Everyone' as segment from core.customers"
    )
    con.execute(
        "create or replace table loyalty.balances as "
        "select customer_id, 'Bronze' as tier, 0::bigint as points_balance from core.customers"
    )
    files = {}
    for channel in ("email", "push"):
        write_audience(
            con, Audience("custom", "Everyone", channel, ()), tmp_path / channel, ("csv",)
        )
        with (tmp_path / channel / "custom_everyone.csv").open(encoding="utf-8-sig") as handle:
            exported = {
                row["customer_id"]: row["consent_stated_at"] for row in csv.DictReader(handle)
            }
        expected = {
            customer: str(stated_at)
            for customer, stated_at in rows(
                con,
                "select customer_id, stated_at from core.consent_history "
                "where is_in_effect and is_consented and channel = ?",
                [channel],
            )
        }
        assert exported == expected
        files[channel] = exported
    # By hand: e-mail to C3 (W4's consent of 01-05), push to C1 (A1's of 01-08).
    assert files == {
        "email": {"C3": "2026-01-05 00:00:00"},
        "push": {"C1": "2026-01-08 00:00:00"},
    }
