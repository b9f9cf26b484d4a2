"""Retention of raw rows: what is purged, what stays because it is still in use, and the
accounting that lets every delivery still be reconciled and recognised."""

import re
import shutil
from datetime import date, datetime
from pathlib import Path

import pytest

from assets.ingest.contract import source_files
from assets.ingest.deliveries import ingest_inbox
from assets.privacy.retention import PURGED_WITH_RAW, STILL_READ, cutoff_date, purge_raw_rows
from assets.shared.defaults import SettingsError, check_settings, parsed
from assets.shared.warehouse import ASSETS_DIR, MACROS_FILE, connect, run_model
from assets.staging.standardizers import register_udfs
from pipelines.summary import print_purged

CUSTOMERS = "account_id,email,first_name,last_name,phone,birth_date,street,city,postcode,country,created_at,marketing_opt_in\n"
ORDERS = "order_id,account_id,ordered_at,total_amount,currency,status\n"
CREATED = "2025-01-01T00:00:00Z"


def write_inbox(inbox: Path) -> None:
    """W1 is delivered three times; W2 only in the first file and never changed; the first
    file also has a row with no account_id (quarantined) and W1's first row a birth date that
    cannot be (a field issue). O1 is delivered twice; O2, refunded, three times."""
    (inbox / "web").mkdir(parents=True)
    (inbox / "web" / "customers_20251201.csv").write_text(
        CUSTOMERS
        + f"W1,ann1@example.com,Ann,Lee,,1980-02-33,,,,,{CREATED},true\n"
        + f"W2,bo@example.com,Bo,Ng,,,,,,,{CREATED},true\n"
        + f",nobody@example.com,No,Id,,,,,,,{CREATED},true\n"
    )
    (inbox / "web" / "customers_20260101.csv").write_text(
        CUSTOMERS + f"W1,ann2@example.com,Ann,Lee,,,,,,,{CREATED},true\n"
    )
    (inbox / "web" / "customers_20260201.csv").write_text(
        CUSTOMERS + f"W1,ann3@example.com,Ann,Lee,,,,,,,{CREATED},false\n"
    )
    (inbox / "web" / "orders_20251201.csv").write_text(
        ORDERS
        + "O1,W2,2025-11-30T10:00:00Z,10.00,GBP,completed\n"
        + "O2,W1,2025-11-20T10:00:00Z,20.00,GBP,refunded\n"
    )
    (inbox / "web" / "orders_20260101.csv").write_text(
        ORDERS
        + "O1,W2,2025-11-30T10:00:00Z,12.00,GBP,completed\n"
        + "O2,W1,2025-11-20T10:00:00Z,20.00,GBP,refunded\n"
    )
    (inbox / "web" / "orders_20260201.csv").write_text(
        ORDERS + "O2,W1,2025-11-20T10:00:00Z,20.00,GBP,refunded\n"
    )


def staging_tables(con) -> dict[str, list[tuple]]:
    """What staging makes of the raw rows: it must not change when rows are purged."""
    for model in ("staging/web_customers", "staging/web_orders"):
        run_model(con, model)
    return {
        table: con.execute(f"select * from {table} order by all").fetchall()
        for table in ("staging.web_customers", "staging.web_orders")
    }


def raw_rows(con, table: str) -> list[tuple]:
    key = "account_id" if table == "raw.web_customers" else "order_id"
    return con.execute(f"select {key}, _file from {table} order by all").fetchall()


def manifest(con) -> list[tuple]:
    return con.execute(
        "select file, rows_read, rows_loaded, rows_quarantined, rows_purged, quarantine_rows_purged, "
        "purged_at is not null from raw.deliveries order by file"
    ).fetchall()


@pytest.fixture
def ingested(tmp_path):
    inbox = tmp_path / "inbox"
    write_inbox(inbox)
    con = connect(tmp_path / "w.duckdb", {"as_of": date(2026, 3, 1)})
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    ingest_inbox(con, inbox, max_bad_share=1.0)
    yield con, inbox
    con.close()


NOW = datetime(2026, 3, 1, 6, 0)


def test_superseded_old_rows_go_the_latest_and_rows_still_read_stay(ingested):
    con, inbox = ingested
    before = staging_tables(con)
    assert con.execute("select count(*) from quality.field_issues").fetchall() == [(1,)]

    # Cutoff between the first delivery and the second: only the first is old.
    first = purge_raw_rows(con, date(2025, 12, 12), NOW)
    assert first.rows_purged == {"raw.web_customers": 1, "raw.web_orders": 1}
    assert (first.quarantine_rows_purged, first.field_issues_purged) == (1, 1)
    assert first.deliveries_touched == 2
    assert raw_rows(con, "raw.web_customers") == [
        ("W1", "web/customers_20260101.csv"),  # superseded, but younger than the cutoff
        ("W1", "web/customers_20260201.csv"),
        ("W2", "web/customers_20251201.csv"),  # old, but still W2's latest: a current customer
    ]

    # Cutoff between the second and the third: the second is old now too.
    second = purge_raw_rows(con, date(2026, 1, 15), NOW)
    assert second.rows_purged == {"raw.web_customers": 1, "raw.web_orders": 1}
    assert (second.quarantine_rows_purged, second.field_issues_purged) == (0, 0)
    assert raw_rows(con, "raw.web_customers") == [
        ("W1", "web/customers_20260201.csv"),
        ("W2", "web/customers_20251201.csv"),
    ]
    assert raw_rows(con, "raw.web_orders") == [
        ("O1", "web/orders_20260101.csv"),  # O1's latest, though old
        ("O2", "web/orders_20251201.csv"),  # the first to show O2 refunded: dates the refund
        ("O2", "web/orders_20260201.csv"),
    ]
    assert con.execute("select count(*) from quality.quarantine").fetchall() == [(0,)]
    assert con.execute("select count(*) from quality.field_issues").fetchall() == [(0,)]

    # The delivery as delivered is still accounted for: read = loaded + quarantined, and
    # what is present is what was loaded less what was purged.
    assert manifest(con) == [
        ("web/customers_20251201.csv", 3, 2, 1, 1, 1, True),
        ("web/customers_20260101.csv", 1, 1, 0, 1, 0, True),
        ("web/customers_20260201.csv", 1, 1, 0, 0, 0, False),
        ("web/orders_20251201.csv", 2, 2, 0, 1, 0, True),
        ("web/orders_20260101.csv", 2, 2, 0, 1, 0, True),
        ("web/orders_20260201.csv", 1, 1, 0, 0, 0, False),
    ]
    # The summary reads the phones and e-mails of the rows staging kept from staging.
    for table in ("web_customers", "app_users", "store_members", "callcenter_contacts"):
        run_model(con, f"staging/{table}")
    run_model(con, "quality/source_summary")
    assert con.execute(
        "select file, rows_read, rows_loaded, rows_quarantined from quality.source_summary "
        "where file = 'web/customers_20251201.csv'"
    ).fetchall() == [("web/customers_20251201.csv", 3, 2, 1)]

    # Staging reads exactly what it read before: W1's third version, W2, O2 refunded on 1 Dec.
    after = staging_tables(con)
    assert after == before
    assert con.execute(
        "select source_record_id, email from staging.web_customers order by 1"
    ).fetchall() == [("W1", "ann3@example.com"), ("W2", "bo@example.com")]
    assert con.execute(
        "select source_event_id, refunded_on from staging.web_orders order by 1"
    ).fetchall() == [("O1", None), ("O2", date(2025, 12, 1))]

    # A purged delivery put back in the inbox, under its name or another, is recognised by
    # its content and adds nothing.
    shutil.copy(inbox / "web" / "customers_20251201.csv", inbox / "web" / "customers_20260301.csv")
    again = ingest_inbox(con, inbox, max_bad_share=1.0)
    assert again.deliveries == []
    assert con.execute("select file, duplicate_of from raw.duplicate_deliveries").fetchall() == [
        ("web/customers_20260301.csv", "web/customers_20251201.csv")
    ]
    assert len(raw_rows(con, "raw.web_customers")) == 2
    assert manifest(con)[0] == ("web/customers_20251201.csv", 3, 2, 1, 1, 1, True)


def test_a_second_purge_with_the_same_cutoff_purges_nothing(ingested):
    con, _ = ingested
    purge_raw_rows(con, date(2026, 1, 15), NOW)
    counted = manifest(con)
    again = purge_raw_rows(con, date(2026, 1, 15), NOW)
    assert (again.raw_rows_purged, again.quarantine_rows_purged, again.deliveries_touched) == (
        0,
        0,
        0,
    )
    assert manifest(con) == counted


def test_a_delivery_exactly_retention_days_old_is_kept(ingested):
    con, _ = ingested
    cutoff = cutoff_date(date(2026, 1, 31), 61)
    assert cutoff == date(2025, 12, 1)  # the first delivery is exactly 61 days old: kept
    assert purge_raw_rows(con, cutoff, NOW).raw_rows_purged == 0
    assert purge_raw_rows(con, date(2025, 12, 2), NOW).raw_rows_purged == 2


def test_models_read_raw_tables_only_through_latest_of_or_still_read():
    """A model reading a raw table's older rows would lose them to the purge: it must be
    declared in STILL_READ (assets/privacy/retention.py), which keeps those rows, or in
    PURGED_WITH_RAW, whose history shortens with them. Ingestion's own quality models
    (assets/ingest/sql) count what is held and are left out."""
    raw_tables = {spec.table for spec in source_files()}
    models = sorted(ASSETS_DIR.glob("*/sql/*.sql"))
    assert any(path.parent.parent.name == "staging" for path in models)
    for path in models:
        if path.parent.parent.name == "ingest" or path.stem in PURGED_WITH_RAW:
            continue
        sql = re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))
        through_latest = re.sub(r"latest_of\('raw\.\w+'", "", sql)
        for table in re.findall(r"\braw\.(\w+)", through_latest):
            assert table in raw_tables
            assert table in STILL_READ, f"{path.name} reads raw.{table} besides its latest rows"


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "two years", ""])
def test_a_bad_retention_is_refused_in_one_line(value):
    with pytest.raises(SettingsError) as raised:
        check_settings({"retention_days": value})
    assert str(raised.value) == (
        f"setting retention_days must be a whole number of at least 1, got {value!r}"
    )


def test_retention_from_the_environment(monkeypatch):
    assert parsed("retention_days", "730") == 730
    monkeypatch.setenv("OMNILOYAL_RETENTION_DAYS", "0")
    with pytest.raises(
        SettingsError, match=r"^setting retention_days \(from OMNILOYAL_RETENTION_DAYS\) must be"
    ):
        check_settings({})
    monkeypatch.setenv("OMNILOYAL_RETENTION_DAYS", "90")
    from assets.shared.settings import PipelineSettings

    assert PipelineSettings().retention_days == 90
    assert PipelineSettings().warehouse().retention_days == 90


def test_the_summary_says_what_was_purged_and_nothing_when_nothing_was(capsys):
    counts = {
        "retention_days": 730,
        "cutoff_on": "2024-03-01",
        "raw_rows_purged": 1234,
        "quarantine_rows_purged": 5,
        "field_issues_purged": 0,
        "deliveries_touched": 3,
        "previous_version_files_removed": 1,
        "failed_builds_removed": 0,
    }
    print_purged(counts)
    assert capsys.readouterr().out.splitlines() == [
        "",
        "purged (retention 730 days; rows of deliveries before 2024-03-01)",
        "  raw rows no longer in use         1,234",
        "  quarantine rows                       5",
        "  earlier warehouse files               1",
    ]
    print_purged(
        {
            **counts,
            "raw_rows_purged": 0,
            "quarantine_rows_purged": 0,
            "previous_version_files_removed": 0,
        }
    )
    print_purged(None)
    assert capsys.readouterr().out == ""


def test_the_run_step_purges_reports_counts_and_the_ingestion_check_still_reconciles(
    tmp_path, caplog
):
    """The Dagster step on a warehouse an earlier run purged: nothing_lost_in_ingestion passes
    (purged rows are counted), the step purges what the later cutoff adds, removes an expired
    earlier version and an old failed build, and its metadata holds counts only."""
    import os
    import time

    import dagster as dg

    from assets.ingest import assets as ingest
    from assets.privacy import assets as privacy
    from assets.shared.settings import PipelineSettings
    from assets.shared.warehouse import DAY_S, Warehouse

    inbox = tmp_path / "inbox"
    write_inbox(inbox)
    published = tmp_path / "warehouse" / "omniloyal.duckdb"
    published.parent.mkdir()
    con = connect(published, {"as_of": date(2026, 3, 1)})
    con.execute(MACROS_FILE.read_text())
    ingest_inbox(con, inbox, max_bad_share=1.0)
    purge_raw_rows(con, date(2025, 12, 12), NOW)  # an earlier run's purge
    con.close()
    warehouse = Warehouse(published)
    expired = [
        warehouse.previous_dir / "omniloyal-20250101T000000000000Z.duckdb",
        warehouse.previous_dir / "omniloyal_analytics-20250101T000000000000Z.duckdb",
    ]
    failed_build = warehouse.build_path("failed-run")
    for path, age_days in [(expired[0], 46), (expired[1], 46), (failed_build, 3)]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"old")
        then = time.time() - age_days * DAY_S
        os.utime(path, (then, then))

    # Past dates' audiences and identity charts: folders named before the cutoff go, the
    # cutoff's own date and folders not named after a date stay; reports (aggregates) stay.
    exports, reports = tmp_path / "exports", tmp_path / "reports"
    for folder in ["2026-01-14", "2026-01-15", "notes"]:
        (exports / folder).mkdir(parents=True)
        (exports / folder / "rfm_champions.csv").write_text("customer_id\n")
    (reports / "identity" / "2025-12-01").mkdir(parents=True)
    (reports / "identity" / "2025-12-01" / "cluster_studio.html").write_text("<html>")
    (reports / "2025-12-01.html").write_text("<html>")

    settings = PipelineSettings(
        inbox_dir=str(inbox),
        warehouse_path=str(published),
        exports_dir=str(exports),
        reports_dir=str(reports),
        as_of="2026-03-01",
        retention_days=45,  # cutoff 2026-01-15
        max_bad_row_share=1.0,
    )
    result = dg.materialize(
        [ingest.raw_deliveries, ingest.nothing_lost_in_ingestion, privacy.retention_purge],
        resources={"settings": settings},
    )
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    (materialization,) = result.asset_materializations_for_node("retention_purge")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    assert metadata == {
        "retention_days": 45,
        "cutoff_on": "2026-01-15",
        "raw_rows_purged": 2,
        "quarantine_rows_purged": 0,
        "field_issues_purged": 0,
        "deliveries_touched": 2,
        "previous_version_files_removed": 2,
        "failed_builds_removed": 1,
        "dated_folders_removed": 2,
        "rows_purged_raw.web_customers": 1,
        "rows_purged_raw.web_orders": 1,
    }
    assert not any(path.exists() for path in [*expired, failed_build])
    assert sorted(p.name for p in exports.iterdir()) == ["2026-01-15", "notes"]
    assert not (reports / "identity" / "2025-12-01").exists()
    assert (reports / "2025-12-01.html").is_file()
    build = connect(warehouse.build_path(result.run_id), read_only=True)
    try:
        assert raw_rows(build, "raw.web_customers") == [
            ("W1", "web/customers_20260201.csv"),
            ("W2", "web/customers_20251201.csv"),
        ]
    finally:
        build.close()
