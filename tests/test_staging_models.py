"""Staging models: the later delivery of a key wins, fields are standardized and flagged."""

from datetime import date

from assets.ingest.deliveries import ingest_inbox
from assets.shared.warehouse import MACROS_FILE, connect, run_model
from assets.staging.standardizers import register_udfs

HEADER = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in\n"


def test_later_delivery_wins_and_fields_are_standardized(tmp_path):
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "customers_20260101.csv").write_text(
        HEADER
        + "W1,Old@Example.com,bob,SMITH,07911 123456,1980-02-03,12 High Street,london,sw1a1aa,gb,2025-01-01T00:00:00Z,true\n"
        + "W2,x@y.com,Ann,Lee,12345,2090-01-01,,,,,2025-01-01T00:00:00Z,false\n"
    )
    # The later file changes W1's e-mail and consent; W2 is not in it and stays.
    (tmp_path / "web" / "customers_20260102.csv").write_text(
        HEADER + "W1, New@Example.com ,bob,SMITH,+44 7911 123456,1980-02-03,12 High St.,london,SW1A 1AA,GB,2025-01-01T00:00:00Z,false\n"
    )
    con = connect(":memory:", {"as_of": date(2026, 1, 31)})
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    ingest_inbox(con, tmp_path)
    assert run_model(con, "staging/web_customers") == 2
    rows = con.execute(
        "select source_record_id, first_name, last_name, email, phone_e164, has_invalid_phone, birth_on, "
        "has_implausible_birth_date, street_key, postcode, marketing_opt_in, delivered_on "
        "from staging.web_customers order by 1"
    ).fetchall()
    assert rows == [
        ("W1", "Bob", "Smith", "new@example.com", "+447911123456", False, date(1980, 2, 3), False, "12 high st", "SW1A 1AA", False, date(2026, 1, 2)),
        ("W2", "Ann", "Lee", "x@y.com", None, True, None, True, None, None, False, date(2026, 1, 1)),
    ]
    # History stays in raw: both deliveries of W1.
    assert con.execute("select count(*) from raw.web_customers where account_id = 'W1'").fetchall()[0][0] == 2
