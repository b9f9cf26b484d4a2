"""Phones read in the right region: a record's own country, the configured region, or the
region inferred from the data; possible-only numbers kept as weaker keys; the phone check."""

from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from assets.ingest.contract import source_files
from assets.ingest.deliveries import create_raw_tables, ingest_inbox
from assets.shared.settings import PipelineSettings
from assets.shared.warehouse import MACROS_FILE, connect, run_model
from assets.staging.standardizers import infer_phone_region, register_udfs

WEB_HEADER = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in"
STORE_HEADER = "card_number,first_name,last_name,phone,postcode,date_of_birth,enrolled_on,store_id"
CALLS_HEADER = (
    "contact_id,caller_name,phone,email,contacted_at,reason,resolution,csat,goodwill_points"
)
# The formats the US exports use, all one number.
US_FORMATS = ["(916) 658-1680", "916.658.1680", "1-916-658-1680", "+1 916 658 1680", "916-658-1680"]


def write(inbox: Path, name: str, lines: list[str]) -> None:
    path = inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def us_inbox(inbox: Path) -> None:
    """Web accounts in the US (two say so), and store cards and calls that carry no country."""
    write(
        inbox,
        "web/customers_20260101.csv",
        [
            WEB_HEADER,
            "W1,,Ann,Lee,(916) 658-1680,,,,,US,,",
            "W2,,Bob,Ray,916.658.1681,,,,,us,,",
            "W3,,Cy,Fox,916-658-1682,,,,,,,",
        ],
    )
    write(
        inbox,
        "store/members_20260101.csv",
        [STORE_HEADER] + [f"S{i},Dee,Lim,{phone},,,," for i, phone in enumerate(US_FORMATS)],
    )
    write(
        inbox,
        "callcenter/contacts_20260101.csv",
        [CALLS_HEADER]
        + [f"K{i},Eve Ng,{phone},,2026-01-01T09:00:00Z,,,," for i, phone in enumerate(US_FORMATS)],
    )


def stage(settings: PipelineSettings, run_id: str = "run") -> None:
    """What a run does up to staging: ingest in one step, then each staging model in its own."""
    with settings.build(run_id) as con:
        ingest_inbox(con, Path(settings.inbox_dir))
    for spec in source_files():
        with settings.build(run_id, standardizers=True) as con:
            run_model(con, f"staging/{spec.table}")


def build(settings: PipelineSettings, run_id: str = "run"):
    return connect(settings.warehouse().build_path(run_id), read_only=True)


def settings_for(tmp_path: Path, phone_region: str, inbox: Path | None = None) -> PipelineSettings:
    return PipelineSettings(
        inbox_dir=str(inbox or tmp_path / "inbox"),
        warehouse_path=str(tmp_path / "warehouse" / "omniloyal.duckdb"),
        as_of="2026-06-30",
        phone_region=phone_region,
    )


def phones(con, table: str) -> list[tuple]:
    return con.execute(
        f"select source_record_id, phone_e164, is_phone_valid from staging.{table} order by 1"
    ).fetchall()


def test_a_us_inbox_with_no_region_set_reads_us_numbers_in_every_format(tmp_path):
    us_inbox(tmp_path / "inbox")
    settings = settings_for(tmp_path, phone_region="")
    stage(settings)
    con = build(settings)
    try:
        assert phones(con, "store_members") == [(f"S{i}", "+19166581680", True) for i in range(5)]
        assert phones(con, "callcenter_contacts") == [
            (f"K{i}", "+19166581680", True) for i in range(5)
        ]
        # W3 has no country: it is read in the inferred region, like the other sources.
        assert phones(con, "web_customers") == [
            ("W1", "+19166581680", True),
            ("W2", "+19166581681", True),
            ("W3", "+19166581682", True),
        ]
    finally:
        con.close()
    # Two +1 numbers (one in each of store and call center) and two web accounts in the US.
    with settings.build("run") as con:
        inferred = infer_phone_region(con)
    assert inferred.region == "US"
    assert (
        inferred.inferred_from
        == "most common in 2 phone numbers with a country code and 2 country values (US 4)"
    )


def test_a_web_customers_own_country_beats_the_configured_region(tmp_path):
    us_inbox(tmp_path / "inbox")
    settings = settings_for(tmp_path, phone_region="GB")
    stage(settings)
    con = build(settings)
    try:
        # W1 and W2 say US; W3 has no country and is read in GB, as are the store cards,
        # where a US number without its +1 is a different (here valid) UK number.
        assert phones(con, "web_customers") == [
            ("W1", "+19166581680", True),
            ("W2", "+19166581681", True),
            ("W3", "+449166581682", True),
        ]
        assert con.execute(
            "select phone_e164 from staging.store_members where source_record_id = 'S3'"
        ).fetchall() == [
            ("+19166581680",)  # written with +1: the same number in any region
        ]
        assert con.execute(
            "select phone_e164 from staging.store_members where source_record_id = 'S0'"
        ).fetchall() == [("+449166581680",)]
    finally:
        con.close()


def raw_with(phones_: list[str], countries: list[str]):
    con = connect(":memory:")
    create_raw_tables(con)
    for i, phone in enumerate(phones_):
        con.execute(
            "insert into raw.app_users (user_id, phone, _delivery_id, _file, _delivered_on, _line) "
            "values (?, ?, 'd', 'f', date '2026-01-01', ?)",
            [f"U{i}", phone, i],
        )
    for i, country in enumerate(countries):
        con.execute(
            "insert into raw.web_customers (account_id, country, _delivery_id, _file, _delivered_on, _line) "
            "values (?, ?, 'd', 'f', date '2026-01-01', ?)",
            [f"W{i}", country, i],
        )
    return con


@pytest.mark.parametrize(
    "phones_, countries, region, inferred_from",
    [
        (
            [
                "+1 916 658 1680",
                "+1-212-555-0100",
                "001 415 555 2671",
                "+44 7911 123456",
                "07911 123456",
                "916 658 1680",
            ],
            ["US", "GB", "us"],
            "US",
            "most common in 4 phone numbers with a country code and 3 country values (US 5, GB 2)",
        ),
        # 0061 and +61 are Australia; UK is GB's old name; Narnia and the 800 free-phone code count for nothing.
        (
            ["+61 412 345 678", "0061412345679", "+800 1234 5678"],
            ["UK", "Narnia"],
            "AU",
            "most common in 3 phone numbers with a country code and 2 country values (AU 2, GB 1)",
        ),
        (
            ["+1 916 658 1680"],
            ["AU"],
            "GB",
            "a tie (AU 1, US 1) in 1 phone numbers with a country code and 1 country values: fallback GB",
        ),
        (
            ["07911 123456", "916 658 1680"],
            [],
            "GB",
            "no country in the data (0 phone numbers with a country code and 0 country values): fallback GB",
        ),
    ],
)
def test_the_phone_region_is_inferred_from_country_codes_and_countries(
    phones_, countries, region, inferred_from
):
    con = raw_with(phones_, countries)
    inferred = infer_phone_region(con)
    assert (inferred.region, inferred.inferred_from) == (region, inferred_from)
    # register_udfs infers it when no region is set, and says so to SQL.
    register_udfs(con, "")
    assert con.execute(
        "select getvariable('phone_region'), getvariable('phone_region_inferred_from')"
    ).fetchall() == [(region, inferred_from)]


def test_the_demo_data_infers_gb(tmp_path):
    from pipelines.generator import generate_inbox

    generate_inbox(people=300, seed=7, out_dir=tmp_path / "inbox", end_date=date(2026, 6, 30))
    con = connect(":memory:")
    ingest_inbox(con, tmp_path / "inbox")
    inferred = infer_phone_region(con)
    assert inferred.region == "GB", inferred


def test_a_possible_but_invalid_number_is_kept_as_a_weaker_key(tmp_path):
    write(
        tmp_path / "inbox",
        "store/members_20260101.csv",
        [
            STORE_HEADER,
            "S1,Ann,Lee,07911 123456,,,,",
            "S2,Bob,Ray,07700 900123,,,,",  # Ofcom's drama range: the right length, never allocated
            "S3,Cy,Fox,12345,,,,",
            "S4,Dee,Lim,,,,,",
        ],
    )
    con = connect(":memory:", {"as_of": date(2026, 6, 30)})
    con.execute(MACROS_FILE.read_text())
    ingest_inbox(con, tmp_path / "inbox")
    register_udfs(con, "GB")
    run_model(con, "staging/store_members")
    assert con.execute(
        "select source_record_id, phone_e164, is_phone_valid, has_invalid_phone from staging.store_members order by 1"
    ).fetchall() == [
        ("S1", "+447911123456", True, False),
        ("S2", "+447700900123", False, False),
        ("S3", None, None, True),
        ("S4", None, None, False),
    ]
    # The summary takes the phones staging read for the rows it kept.
    for table in ("web_customers", "app_users", "callcenter_contacts"):
        run_model(con, f"staging/{table}")
    run_model(con, "quality/source_summary")
    # 3 phones given of 4 rows; 2 read (S1 valid, S2 possible); 1 valid of 4 rows.
    assert con.execute(
        "select phone_present_rate, phones_present, phones_read, phone_read_rate, phone_valid_rate from quality.source_summary"
    ).fetchall() == [(0.75, 3, 2, 0.6667, 0.25)]


def test_the_phone_check_warns_when_a_source_reads_fewer_than_90_percent(tmp_path):
    from assets.ingest.assets import phone_read_rate, raw_deliveries, source_summary
    from assets.staging.assets import staging_assets

    inbox = tmp_path / "inbox"
    # Web: 10 of 10 phones read. Store: 8 of 10 (80%), over two deliveries (5 of 5, then 3 of 5).
    write(
        inbox,
        "web/customers_20260101.csv",
        [WEB_HEADER] + [f"W{i},,Ann,Lee,07911 12345{i},,,,,GB,," for i in range(10)],
    )
    write(
        inbox,
        "store/members_20260101.csv",
        [STORE_HEADER] + [f"S{i},Bob,Ray,07911 22345{i},,,," for i in range(5)],
    )
    write(
        inbox,
        "store/members_20260102.csv",
        [STORE_HEADER]
        + [f"T{i},Bob,Ray,07912 12345{i},,,," for i in range(3)]
        + ["T3,Bob,Ray,ask at desk,,,,", "T4,Bob,Ray,12345,,,,"],
    )
    settings = settings_for(tmp_path, phone_region="")
    result = dg.materialize(
        [raw_deliveries, *staging_assets, source_summary, phone_read_rate],
        resources={"settings": settings},
    )
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    metadata = {key: value.value for key, value in evaluation.metadata.items()}
    assert metadata["sources_below_floor"] == "store (80.0% read, 100.0% of them valid)"
    assert (metadata["phone_read_rate_store"], metadata["phone_valid_share_store"]) == (0.8, 1.0)
    assert (metadata["phone_read_rate_web"], metadata["phone_valid_share_web"]) == (1.0, 1.0)
    assert metadata["phone_region"] == "GB"
    # No phone of any row in what Dagster records.
    assert not any(digits in str(metadata) for digits in ("07911", "7911", "12345", "ask at desk"))
    summary = result.asset_materializations_for_node("quality__source_summary")[0].metadata
    assert summary["phone_region"].value == "GB"
    assert summary["phone_region_inferred_from"].value.startswith(
        "most common in 0 phone numbers with a country code and 10 country values"
    )

    # Above the floor, the check passes.
    (inbox / "store/members_20260102.csv").unlink()
    settings = settings_for(tmp_path / "second", phone_region="", inbox=inbox)
    result = dg.materialize(
        [raw_deliveries, *staging_assets, source_summary, phone_read_rate],
        resources={"settings": settings},
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed


def test_the_phone_check_warns_when_phones_are_read_in_the_wrong_region(tmp_path):
    """US numbers read as British are the right length for UK numbers: read, but not valid."""
    from assets.ingest.assets import phone_read_rate, raw_deliveries, source_summary
    from assets.staging.assets import staging_assets

    write(
        tmp_path / "inbox",
        "store/members_20260101.csv",
        [STORE_HEADER]
        + [
            f"S{i},Dee,Lim,{phone},,,,"
            for i, phone in enumerate(
                [
                    "(415) 555-2671",
                    "(312) 555-0199",
                    "(615) 422-2919",
                    "(212) 736-5000",
                    "+1 916 658 1680",
                ]
            )
        ],
    )
    result = dg.materialize(
        [raw_deliveries, *staging_assets, source_summary, phone_read_rate],
        resources={"settings": settings_for(tmp_path, phone_region="US")},
    )
    assert result.get_asset_check_evaluations()[0].passed
    result = dg.materialize(
        [raw_deliveries, *staging_assets, source_summary, phone_read_rate],
        resources={
            "settings": settings_for(tmp_path / "gb", phone_region="GB", inbox=tmp_path / "inbox")
        },
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    # In GB, (415) 555-2671 is 01415 552671's length but in no allocated range: possible,
    # not valid. Only the number written with +1 is valid.
    assert (
        evaluation.metadata["sources_below_floor"].value
        == "store (100.0% read, 20.0% of them valid)"
    )


def test_the_summary_reads_replaced_rows_itself_and_staged_rows_from_staging(tmp_path):
    """Rows staging kept take staging's phones and e-mails; rows a later delivery (or a later
    line of the same file) replaced are standardized by the summary: each delivery's counts
    are those of its own rows, as if every raw row were standardized."""
    inbox = tmp_path / "inbox"
    write(
        inbox,
        "web/customers_20260101.csv",
        [
            WEB_HEADER,
            "W1,ann@example.com,Ann,Lee,07911 123451,,,,,GB,,",  # kept: read from staging
            "W2,not-an-email,Bob,Ray,12345,,,,,GB,,",  # replaced on 2 January
            "W3,,Cy,Fox,ask at desk,,,,,GB,,",  # replaced by the next line of this file
            "W3,cy@example.com,Cy,Fox,07911 123453,,,,,GB,,",
        ],
    )
    write(
        inbox,
        "web/customers_20260102.csv",
        [WEB_HEADER, "W2,bob@example.com,Bob,Ray,07911 123452,,,,,GB,,"],
    )
    con = connect(":memory:", {"as_of": date(2026, 6, 30)})
    con.execute(MACROS_FILE.read_text())
    ingest_inbox(con, inbox)
    register_udfs(con, "GB")
    for table in ("web_customers", "app_users", "store_members", "callcenter_contacts"):
        run_model(con, f"staging/{table}")
    run_model(con, "quality/source_summary")
    assert con.execute(
        "select file, phones_present, phones_read, phones_valid, email_present_rate, email_valid_rate "
        "from quality.source_summary where source = 'web' order by file"
    ).fetchall() == [
        # 4 phones: W1's and W3's second line read (valid), 12345 and 'ask at desk' not;
        # 3 e-mails of 4 rows, 2 valid.
        ("web/customers_20260101.csv", 4, 2, 2, 0.75, 0.5),
        ("web/customers_20260102.csv", 1, 1, 1, 1.0, 1.0),
    ]
