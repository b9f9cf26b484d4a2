"""Referrals on a small hand-built scenario: every status and reason, the yearly cap and
the points in the ledger, worked out by hand from the records and purchases below.

Ann (customer ANN) shares the code ANN1. The program: 500 points to the referrer, 200 to the
referred customer, a first completed purchase within 30 days, at most 2 rewarded referrals
per referrer per calendar year.
"""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from test_points_ledger import PROGRAM as LEDGER_PROGRAM
from test_points_ledger import build

from assets.ingest.deliveries import ingest_inbox
from assets.loyalty.program import ProgramError, load_program
from assets.privacy.erasure import create_privacy_tables
from assets.shared.warehouse import MACROS_FILE, connect, run_model
from assets.staging.standardizers import register_udfs

REFERRALS = """
referrals:
  referrer_points: 500
  referred_points: 200
  qualify_within_days: 30
  yearly_cap_per_referrer: 2
"""
AS_OF = date(2026, 6, 30)

# source, source_record_id, customer (as identity resolved it), registered_at, own code, referred_by
RECORDS = [
    ("web", "W-ANN", "ANN", "2025-01-01 10:00", "ANN1", None),
    # Ann's second web account, signed up with her own code: same customer.
    ("web", "W-ANN2", "ANN", "2026-03-01 10:00", None, "ANN1"),
    # Rewarded in 2025: the 2026 cap does not count it.
    ("app", "U-IDA", "IDA", "2025-11-01 10:00", None, "ANN1"),
    # Rewarded (1st of 2026), (2nd of 2026), then capped (3rd of 2026).
    ("web", "W-BOB", "BOB", "2026-02-01 10:00", "BOB7", "ANN1"),
    ("app", "U-CAT", "CAT", "2026-04-01 10:00", None, "ANN1"),
    ("web", "W-DAN", "DAN", "2026-04-02 10:00", None, "ANN1"),
    # Eve held a store card before signing up on the web with Ann's code: already a customer.
    ("store", "S-EVE", "EVE", "2025-06-01 10:00", None, None),
    ("web", "W-EVE", "EVE", "2026-05-01 10:00", None, "ANN1"),
    # Fay bought only after the 30 days.
    ("web", "W-FAY", "FAY", "2026-01-01 10:00", None, "ANN1"),
    # Gus signed up ten days before the run and has not bought yet.
    ("app", "U-GUS", "GUS", "2026-06-20 10:00", None, "ANN1"),
    # Hal's code matches nobody's.
    ("web", "W-HAL", "HAL", "2026-03-01 10:00", None, "NOPE"),
]

# source_event_id, customer, channel, status, occurred_at, amount, refund known on
PURCHASES = [
    ("P-IDA", "IDA", "app", "completed", "2025-11-05 12:00", 20, None),
    # Bob's first purchase is refunded: the second one, on 10 February, qualifies.
    ("P-BOB1", "BOB", "web", "refunded", "2026-02-05 12:00", 90, "2026-02-07"),
    ("P-BOB2", "BOB", "web", "completed", "2026-02-10 12:00", 40, None),
    ("P-CAT", "CAT", "app", "completed", "2026-04-03 12:00", 15, None),
    ("P-DAN", "DAN", "web", "completed", "2026-04-20 12:00", 60, None),
    ("P-ANN", "ANN", "web", "completed", "2026-03-05 12:00", 30, None),
    ("P-EVE", "EVE", "web", "completed", "2026-05-02 12:00", 25, None),
    ("P-FAY", "FAY", "web", "completed", "2026-03-01 12:00", 50, None),
    ("P-HAL", "HAL", "web", "completed", "2026-03-02 12:00", 10, None),
]


def load_scenario(con) -> None:
    create_privacy_tables(con)
    customers = sorted({customer for _, _, customer, *_ in RECORDS})
    con.execute(
        "create or replace table core.customers (customer_id varchar, birth_on date, first_registered_at timestamp)"
    )
    # Born in September: no birthday bonus in the scenario.
    con.executemany(
        "insert into core.customers values (?, date '1980-09-01', timestamp '2025-01-01')",
        [[c] for c in customers],
    )
    con.execute(
        """
        create or replace table core.events (
            event_id varchar, customer_id varchar, channel varchar, source_event_id varchar, source_record_id varchar,
            event_type varchar, status varchar, occurred_at timestamp, occurred_on date, amount decimal(18, 2),
            points bigint, refunded_at timestamp, is_completed_purchase boolean)
        """
    )
    con.executemany(
        "insert into core.events values (? || ':' || ?, ?, ?, ?, null, 'purchase', ?, ?::timestamp, "
        "?::timestamp::date, ?, null, ?::timestamp, ? = 'completed')",
        [
            [channel, event, customer, channel, event, status, at, at, amount, refund, status]
            for event, customer, channel, status, at, amount, refund in PURCHASES
        ],
    )
    con.execute(
        "create or replace table identity.match_input (unique_id varchar, source varchar, source_record_id varchar, registered_at timestamp)"
    )
    con.execute(
        "create or replace table identity.source_records (source varchar, source_record_id varchar, customer_id varchar)"
    )
    for table in ("staging.web_customers", "staging.app_users"):
        con.execute(
            f"create or replace table {table} (source varchar, source_record_id varchar, "
            "registered_at timestamp, referral_code varchar, referred_by varchar)"
        )
    for source, record, customer, registered_at, code, referred_by in RECORDS:
        con.execute(
            "insert into identity.match_input values (? || ':' || ?, ?, ?, ?::timestamp)",
            [source, record, source, record, registered_at],
        )
        con.execute(
            "insert into identity.source_records values (?, ?, ?)", [source, record, customer]
        )
        if source in ("web", "app"):
            table = "staging.web_customers" if source == "web" else "staging.app_users"
            con.execute(
                f"insert into {table} values (?, ?, ?::timestamp, ?, ?)",
                [source, record, registered_at, code, referred_by],
            )


@pytest.fixture(scope="module")
def program_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("program") / "program.yaml"
    path.write_text(LEDGER_PROGRAM + REFERRALS)
    return path


@pytest.fixture(scope="module")
def con(program_path):
    con = connect(":memory:")
    load_scenario(con)
    build(con, as_of=AS_OF, program_path=program_path)
    yield con
    con.close()


def referral(con, referral_id: str) -> dict:
    cursor = con.execute("select * from loyalty.referrals where referral_id = ?", [referral_id])
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    assert len(rows) == 1, referral_id
    return dict(zip(names, rows[0]))


def test_one_row_per_record_signed_up_with_a_code(con):
    ids = [r[0] for r in con.execute("select referral_id from loyalty.referrals").fetchall()]
    assert ids == sorted(
        f"{source}:{record}" for source, record, *_, referred_by in RECORDS if referred_by
    )


def test_a_rewarded_referral_qualifies_on_the_first_unrefunded_purchase(con):
    bob = referral(con, "web:W-BOB")
    assert (bob["referrer_customer_id"], bob["referred_customer_id"]) == ("ANN", "BOB")
    assert (bob["status"], bob["reason"]) == ("rewarded", None)
    # P-BOB1 (5 Feb) was refunded on 7 Feb: P-BOB2 (10 Feb) is the qualifying purchase.
    assert str(bob["qualified_at"]) == "2026-02-10 12:00:00"
    assert bob["qualifying_event_id"] == "web:P-BOB2"
    assert (bob["referrer_points"], bob["referred_points"]) == (500, 200)


def test_a_self_referral_through_a_second_account_is_rejected(con):
    second = referral(con, "web:W-ANN2")
    assert (second["status"], second["reason"]) == ("rejected", "same_customer")
    assert second["referrer_customer_id"] == second["referred_customer_id"] == "ANN"
    assert (second["referrer_points"], second["referred_points"]) == (0, 0)


def test_the_yearly_cap_counts_qualified_referrals_per_calendar_year(con):
    # 2026, in order of the qualifying purchase: Bob (10 Feb), Cat (3 Apr), Dan (20 Apr).
    # Ida qualified in 2025 and does not count against 2026's cap of 2.
    statuses = {
        rid: (referral(con, rid)["status"], referral(con, rid)["reason"])
        for rid in ("app:U-IDA", "web:W-BOB", "app:U-CAT", "web:W-DAN")
    }
    assert statuses == {
        "app:U-IDA": ("rewarded", None),
        "web:W-BOB": ("rewarded", None),
        "app:U-CAT": ("rewarded", None),
        "web:W-DAN": ("capped", "yearly_cap"),
    }
    assert str(referral(con, "web:W-DAN")["qualified_at"]) == "2026-04-20 12:00:00"


def test_rejections_and_pending(con):
    expected = {
        "web:W-EVE": ("rejected", "already_customer"),  # store card since June 2025
        "web:W-FAY": ("rejected", "not_qualified_in_time"),  # bought after 59 days
        "app:U-GUS": ("pending", "no_purchase_yet"),  # window open until 20 July
        "web:W-HAL": ("rejected", "unknown_code"),
    }
    assert {
        rid: (referral(con, rid)["status"], referral(con, rid)["reason"]) for rid in expected
    } == (expected)
    assert referral(con, "web:W-HAL")["referrer_customer_id"] is None
    assert str(referral(con, "app:U-GUS")["window_ends_at"]) == "2026-07-20 10:00:00"


def test_rewards_are_ledger_entries_traceable_to_the_referral(con):
    rows = con.execute(
        "select customer_id, rule, points, occurred_at::varchar, source_event_id, entry_id "
        "from loyalty.ledger where rule like 'referral_%' order by occurred_at, customer_id"
    ).fetchall()

    def entry(rule, referral_id):
        return hashlib.md5(f"{rule}|{referral_id}".encode()).hexdigest()

    assert rows == [
        (
            "ANN",
            "referral_referrer",
            500,
            "2025-11-05 12:00:00",
            "U-IDA",
            entry("referral_referrer", "app:U-IDA"),
        ),
        (
            "IDA",
            "referral_referred",
            200,
            "2025-11-05 12:00:00",
            "U-IDA",
            entry("referral_referred", "app:U-IDA"),
        ),
        (
            "ANN",
            "referral_referrer",
            500,
            "2026-02-10 12:00:00",
            "W-BOB",
            entry("referral_referrer", "web:W-BOB"),
        ),
        (
            "BOB",
            "referral_referred",
            200,
            "2026-02-10 12:00:00",
            "W-BOB",
            entry("referral_referred", "web:W-BOB"),
        ),
        (
            "ANN",
            "referral_referrer",
            500,
            "2026-04-03 12:00:00",
            "U-CAT",
            entry("referral_referrer", "app:U-CAT"),
        ),
        (
            "CAT",
            "referral_referred",
            200,
            "2026-04-03 12:00:00",
            "U-CAT",
            entry("referral_referred", "app:U-CAT"),
        ),
    ]


def test_balances_include_the_referral_points(con):
    # Ann: enrolment 100 (1 Jan 2025, expired 1 Jan 2026, 12 months on, unspent: -100)
    #      + purchase P-ANN 30 (web rate 1) + 3 x 500 referrals = 1530.
    # Bob: enrolment 100 + P-BOB2 40 (P-BOB1 earned 90, taken back by its refund) + 200 = 340.
    # Cat: enrolment 100 + P-CAT 15 x app rate 2 = 30 + 200 = 330.
    balances = dict(
        con.execute(
            "select customer_id, points_balance from loyalty.balances where customer_id in ('ANN', 'BOB', 'CAT')"
        ).fetchall()
    )
    assert balances == {"ANN": 1530, "BOB": 340, "CAT": 330}


def test_without_a_referrals_section_nothing_is_recorded_or_rewarded(tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text(LEDGER_PROGRAM)
    con = connect(":memory:")
    load_scenario(con)
    build(con, as_of=AS_OF, program_path=path)
    assert con.execute("select count(*) from loyalty.referrals").fetchall() == [(0,)]
    assert con.execute(
        "select count(*) from loyalty.ledger where rule like 'referral_%'"
    ).fetchall() == [(0,)]
    con.close()


def test_codes_are_read_trimmed_and_upper_cased_and_optional_in_the_files(tmp_path):
    header = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in"
    (tmp_path / "web").mkdir()
    # An older export without the two columns still loads: they are optional.
    (tmp_path / "web" / "customers_20260101.csv").write_text(
        header + "\nW1,a@b.com,Ann,Lee,,,,,,,2025-01-01T00:00:00Z,true\n"
    )
    (tmp_path / "web" / "customers_20260102.csv").write_text(
        header
        + ",referral_code,referred_by\n"
        + "W2,c@d.com,Bob,Ray,,,,,,,2025-02-01T00:00:00Z,true, ab12 ,\n"
        + "W3,e@f.com,Cat,Day,,,,,,,2025-03-01T00:00:00Z,false,,Ab12  \n"
        + "W4,g@h.com,Dan,Fox,,,,,,,2025-03-01T00:00:00Z,false,,  \n"
    )
    con = connect(":memory:", {"as_of": date(2026, 1, 31)})
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    ingest_inbox(con, tmp_path)
    run_model(con, "staging/web_customers")
    assert con.execute(
        "select source_record_id, referral_code, referred_by from staging.web_customers order by 1"
    ).fetchall() == [
        ("W1", None, None),
        ("W2", "AB12", None),
        ("W3", None, "AB12"),
        ("W4", None, None),
    ]
    con.close()


# source_record_id, customer, registered_at, referred_by, street_key, postcode, phone: Ann's
# household (Jim at her address, Kim on her landline) and Lou, who shares nothing with her.
HOUSEHOLD = [
    ("W-ANN", "ANN", "2025-01-01 10:00", None, "1 high st", "AB1 2CD", "+441632960001"),
    ("W-JIM", "JIM", "2026-03-01 10:00", "ANN1", "1 high st", "AB1 2CD", None),
    ("W-KIM", "KIM", "2026-03-02 10:00", "ANN1", "9 low rd", "ZZ9 9ZZ", "+441632960001"),
    ("W-LOU", "LOU", "2026-03-03 10:00", "ANN1", "1 high st", "ZZ9 9ZZ", "+441632960002"),
]


def household_outcomes(tmp_path, household_counts_as_self: bool) -> dict:
    con = connect(":memory:")
    create_privacy_tables(con)
    con.execute(
        "create table core.customers (customer_id varchar, birth_on date, first_registered_at timestamp)"
    )
    con.execute(
        "create table core.events (event_id varchar, customer_id varchar, channel varchar, source_event_id varchar, "
        "source_record_id varchar, event_type varchar, status varchar, occurred_at timestamp, occurred_on date, "
        "amount decimal(18, 2), points bigint, refunded_at timestamp, is_completed_purchase boolean)"
    )
    con.execute(
        "create table identity.match_input (unique_id varchar, source varchar, source_record_id varchar, "
        "registered_at timestamp, street_key varchar, postcode varchar, phone_e164 varchar)"
    )
    con.execute(
        "create table identity.source_records (source varchar, source_record_id varchar, customer_id varchar)"
    )
    con.execute(
        "create table staging.web_customers (source varchar, source_record_id varchar, registered_at timestamp, "
        "referral_code varchar, referred_by varchar)"
    )
    for record, customer, registered_at, referred_by, street, postcode, phone in HOUSEHOLD:
        con.execute(
            "insert into core.customers values (?, date '1980-09-01', ?::timestamp)",
            [customer, registered_at],
        )
        con.execute(
            "insert into identity.match_input values ('web:' || ?, 'web', ?, ?::timestamp, ?, ?, ?)",
            [record, record, registered_at, street, postcode, phone],
        )
        con.execute("insert into identity.source_records values ('web', ?, ?)", [record, customer])
        con.execute(
            "insert into staging.web_customers values ('web', ?, ?::timestamp, ?, ?)",
            [record, registered_at, "ANN1" if customer == "ANN" else None, referred_by],
        )
        # Each referred customer buys five days after signing up: every referral qualifies.
        con.execute(
            "insert into core.events values ('web:P-' || ?, ?, 'web', 'P-' || ?, null, 'purchase', 'completed', "
            "?::timestamp + interval 5 day, cast(?::timestamp + interval 5 day as date), 40, null, null, true)",
            [customer, customer, customer, registered_at, registered_at],
        )
    program = tmp_path / f"program_{household_counts_as_self}.yaml"
    program.write_text(
        LEDGER_PROGRAM
        + REFERRALS.replace("yearly_cap_per_referrer: 2", "yearly_cap_per_referrer: 5")
        + f"  household_counts_as_self: {str(household_counts_as_self).lower()}\n"
    )
    build(con, as_of=AS_OF, program_path=program)
    outcomes = {
        record: (status, reason)
        for record, status, reason in con.execute(
            "select source_record_id, status, reason from loyalty.referrals"
        ).fetchall()
    }
    con.close()
    return outcomes


def test_a_household_counts_as_self_only_where_the_program_says_so(tmp_path):
    # Jim shares Ann's street address, Kim her phone; Lou shares her street but not her postcode.
    assert household_outcomes(tmp_path, household_counts_as_self=True) == {
        "W-JIM": ("rejected", "same_household"),
        "W-KIM": ("rejected", "same_household"),
        "W-LOU": ("rewarded", None),
    }
    assert household_outcomes(tmp_path, household_counts_as_self=False) == {
        "W-JIM": ("rewarded", None),
        "W-KIM": ("rewarded", None),
        "W-LOU": ("rewarded", None),
    }


def test_a_bad_referrals_section_is_one_line_naming_the_key(tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text(
        LEDGER_PROGRAM
        + REFERRALS.replace("yearly_cap_per_referrer: 2", "yearly_cap_per_referrer: 0")
    )
    with pytest.raises(ProgramError) as caught:
        load_program(path)
    assert str(caught.value) == (
        f"{path}: referrals.yearly_cap_per_referrer must be a whole number >= 1, got 0"
    )
