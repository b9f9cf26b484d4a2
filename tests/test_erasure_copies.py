"""Erasure outside the build (issue 15): previous versions, failed builds, exports, Splink charts.

Two people share a phone: Ann (erased) and Bob (not). The phone is not on the suppression list
(a household phone is never listed), so only Ann's e-mail, her records and her customer ids
identify her. Every file here is hand-built; the expected rows are written out by hand.
"""

import hashlib
import json
import os
import shutil
from datetime import UTC, date, datetime, timedelta

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from assets.exports.segment_files import write_segment_exports
from assets.loyalty.program import load_program
from assets.privacy.analytics import build_analytics
from assets.privacy.copies import (
    find_erased_values_everywhere,
    main_twin,
    read_erased_people,
    remove_failed_builds,
    remove_record_level_charts,
    scrub_exports,
    scrub_previous_versions,
)
from assets.shared.pseudonyms import pseudonym
from assets.shared.warehouse import Warehouse, connect

SALT = "5a17" * 16
STAMP = "20260201T000000000000Z"
ANN_EMAIL = "ann@example.com"
SHARED_PHONE = "+447700900001"


def build_suppression_source(path, completed_at=datetime(2026, 3, 1, 10, 0)):
    """What the erasure of Ann left in the build: her ids (the old C_OLD_ANN too), the hashes of
    her e-mail and records (not the shared phone), her records' pseudonymous id X1."""
    con = duckdb.connect(str(path))
    con.execute("create schema privacy")
    con.execute(
        "create table privacy.erased_customers as select * from (values "
        "('C_ANN', 'R1'), ('C_OLD_ANN', 'R1')) t(customer_id, request_id)"
    )
    con.execute(
        "create table privacy.suppressed_identifiers (kind varchar, identifier_hash varchar, "
        "request_id varchar, added_on date)"
    )
    for kind, value in (("email", ANN_EMAIL), ("record", "web:W1"), ("record", "app:U1")):
        con.execute(
            "insert into privacy.suppressed_identifiers values (?, ?, 'R1', date '2026-03-01')",
            [kind, pseudonym(value, SALT)],
        )
    con.execute(
        "create table privacy.erased_records as select * from (values "
        "('web', 'W1', 'X1', 'R1'), ('app', 'U1', 'X1', 'R1')) "
        "t(source, source_record_id, erased_customer_id, request_id)"
    )
    con.execute(
        "create table privacy.erasure_log as select 'R1' as request_id, "
        "timestamp '2026-02-28 09:00' as received_at, ?::timestamp as completed_at, "
        "1::bigint as customers_erased, 2::bigint as records_erased, 9::bigint as tables_touched",
        [completed_at],
    )
    con.close()


# The previous version: Ann under her old id C_OLD_ANN (web W1, app U1), Bob as C_BOB (web W2),
# both with the shared phone. Rows are (table, columns, rows); Ann's rows are marked below.
OLD_TABLES = {
    "raw.deliveries": ("delivery_id varchar, file varchar", [("d1", "web/customers_1.csv")]),
    "raw.web_customers": (
        "account_id varchar, email varchar, first_name varchar, phone varchar, _file varchar, _line bigint",
        [
            ("W1", " Ann@Example.com ", "Ann", "07700 900001", "web/customers_1.csv", 2),
            ("W2", "bob@example.com", "Bob", "07700 900001", "web/customers_1.csv", 3),
        ],
    ),
    "raw.app_users": (
        "user_id varchar, email varchar, name varchar, _file varchar, _line bigint",
        [("U1", ANN_EMAIL, "Ann A", "app/users_1.jsonl", 2)],
    ),
    "raw.web_orders": (
        "order_id varchar, account_id varchar, total_amount decimal(18,2), _file varchar, _line bigint",
        [("O1", "W1", 10.5, "web/orders_1.csv", 2), ("O2", "W2", 20.0, "web/orders_1.csv", 3)],
    ),
    "staging.web_customers": (
        "source varchar, source_record_id varchar, first_name varchar, email varchar, phone_e164 varchar",
        [
            ("web", "W1", "Ann", ANN_EMAIL, SHARED_PHONE),
            ("web", "W2", "Bob", "bob@example.com", SHARED_PHONE),
        ],
    ),
    "identity.source_records": (
        "source varchar, source_record_id varchar, customer_id varchar",
        [("web", "W1", "C_OLD_ANN"), ("app", "U1", "C_OLD_ANN"), ("web", "W2", "C_BOB")],
    ),
    "identity.clusters": (
        "unique_id varchar, cluster_id varchar",
        [("web:W1", "web:W1"), ("app:U1", "web:W1"), ("web:W2", "web:W2")],
    ),
    "identity.match_evidence": (
        "unique_id_l varchar, unique_id_r varchar, match_probability double",
        [("app:U1", "web:W1", 0.99), ("web:W1", "web:W2", 0.2)],
    ),
    "core.customers": (
        "customer_id varchar, first_name varchar, email varchar, phone_e164 varchar",
        [
            ("C_OLD_ANN", "Ann", ANN_EMAIL, SHARED_PHONE),
            ("C_BOB", "Bob", "bob@example.com", SHARED_PHONE),
        ],
    ),
    "loyalty.ledger": (
        "entry_id varchar, customer_id varchar, entry_type varchar, points bigint",
        [
            ("E1", "C_OLD_ANN", "earn", 10),
            ("E2", "C_BOB", "earn", 20),
            ("E3", "C_OLD_ANN", "earn", 5),
        ],
    ),
    "loyalty.balances": (
        "customer_id varchar, points_balance bigint",
        [("C_OLD_ANN", 15), ("C_BOB", 20)],
    ),
    "marts.segment_memberships": (
        "customer_id varchar, segmentation varchar, segment varchar",
        [("C_OLD_ANN", "rfm", "Champions"), ("C_BOB", "rfm", "Lost")],
    ),
    "quality.quarantine": (
        "source varchar, entity varchar, file varchar, line bigint, reason varchar, raw varchar",
        [
            (
                "web",
                "customers",
                "web/customers_1.csv",
                9,
                "bad date",
                "W7,ANN@example.com,Ann,1990-13-01",
            ),
            (
                "web",
                "customers",
                "web/customers_1.csv",
                8,
                "bad date",
                "W8,bob@example.com,Bob,1990-13-01",
            ),
        ],
    ),
    "quality.field_issues": (
        "source varchar, entity varchar, file varchar, line bigint, column_name varchar, masked_value varchar",
        [
            ("web", "customers", "web/customers_1.csv", 2, "phone", "0*********1"),
            ("web", "customers", "web/customers_1.csv", 3, "phone", "0*********1"),
        ],
    ),
}

# Hand-computed: what of each table must remain (rows of Bob as they were; Ann's ledger and
# balance moved to her pseudonymous id X1; raw orders kept, they hold no personal column).
EXPECTED_MAIN = {
    "raw.deliveries": [("d1", "web/customers_1.csv")],
    "raw.web_customers": [
        ("W2", "bob@example.com", "Bob", "07700 900001", "web/customers_1.csv", 3)
    ],
    "raw.app_users": [],
    "raw.web_orders": OLD_TABLES["raw.web_orders"][1],
    "staging.web_customers": [("web", "W2", "Bob", "bob@example.com", SHARED_PHONE)],
    "identity.source_records": [("web", "W2", "C_BOB")],
    "identity.clusters": [("web:W2", "web:W2")],
    "identity.match_evidence": [],
    "core.customers": [("C_BOB", "Bob", "bob@example.com", SHARED_PHONE)],
    "loyalty.ledger": [
        ("E1", "X1", "earn", 10),
        ("E2", "C_BOB", "earn", 20),
        ("E3", "X1", "earn", 5),
    ],
    "loyalty.balances": [("X1", 15), ("C_BOB", 20)],
    "marts.segment_memberships": [("C_BOB", "rfm", "Lost")],
    "quality.quarantine": [OLD_TABLES["quality.quarantine"][1][1]],
    "quality.field_issues": [OLD_TABLES["quality.field_issues"][1][1]],
}


def build_previous_version(path):
    con = connect(path)
    for table, (columns, rows) in OLD_TABLES.items():
        con.execute(f"create table {table} ({columns})")
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            con.executemany(f"insert into {table} values ({marks})", [list(r) for r in rows])
    con.close()


def rows(path, table):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"select * from {table} order by all").fetchall()
    finally:
        con.close()


def normalized(values):
    return sorted(tuple(float(v) if hasattr(v, "as_tuple") else v for v in r) for r in values)


@pytest.fixture
def place(tmp_path):
    """A warehouse folder with a published file, one previous version (main + analytics twin,
    built by the real analytics code), and the build that applied the erasure."""
    warehouse = Warehouse(tmp_path / "warehouse" / "omniloyal.duckdb")
    warehouse.previous_dir.mkdir(parents=True)
    old = warehouse.previous_dir / f"omniloyal-{STAMP}.duckdb"
    build_previous_version(old)
    con = connect(old)
    build_analytics(con, warehouse.previous_dir / f"omniloyal_analytics-{STAMP}.duckdb", SALT)
    con.close()
    os.chmod(old, 0o640)
    source = tmp_path / "source.duckdb"
    build_suppression_source(source)
    return warehouse, old, read_erased_people(source, SALT)


def test_main_twin_names_the_file_an_analytics_file_was_built_from(tmp_path):
    assert (
        main_twin(tmp_path / f"omniloyal_analytics-{STAMP}.duckdb").name
        == f"omniloyal-{STAMP}.duckdb"
    )
    assert main_twin(tmp_path / "omniloyal_analytics.duckdb").name == "omniloyal.duckdb"
    assert main_twin(tmp_path / "run1.analytics.duckdb").name == "run1.duckdb"
    assert main_twin(tmp_path / f"omniloyal-{STAMP}.duckdb") is None


def test_a_previous_version_loses_every_row_of_the_erased_person_and_only_those(place):
    warehouse, old, erased = place
    analytics = warehouse.previous_dir / f"omniloyal_analytics-{STAMP}.duckdb"
    assert ANN_EMAIL.encode() in old.read_bytes()  # so the check below can fail
    results = {r.path.name: r for r in scrub_previous_versions(warehouse, erased)}

    main = results[old.name]
    assert main.rewritten
    assert main.deleted == {
        "raw.web_customers": 1,
        "raw.app_users": 1,
        "staging.web_customers": 1,
        "identity.source_records": 2,
        "identity.clusters": 2,
        "identity.match_evidence": 2,
        "core.customers": 1,
        "marts.segment_memberships": 1,
        "quality.quarantine": 1,
        "quality.field_issues": 1,
    }
    assert main.rekeyed == {"loyalty.ledger": 2, "loyalty.balances": 1}
    for table, expected in EXPECTED_MAIN.items():
        assert normalized(rows(old, table)) == normalized(expected), table
    # Deleted rows are not left in the file's free blocks: the file was written anew.
    assert ANN_EMAIL.encode() not in old.read_bytes()
    assert b"Ann@Example.com" not in old.read_bytes()
    assert oct(old.stat().st_mode & 0o777) == "0o640"
    # A rollback to this file keeps the erasure: the suppression list came with it.
    assert len(rows(old, "privacy.suppressed_identifiers")) == 3
    assert rows(old, "privacy.erased_customers") == [("C_ANN", "R1"), ("C_OLD_ANN", "R1")]

    # The analytics twin: the same people gone, matched by hashes and keys only.
    twin = results[analytics.name]
    assert twin.deleted["core.customers"] == 1 and twin.deleted["quality.quarantine"] == 1
    assert twin.deleted["quality.field_issues"] == 1
    assert twin.rekeyed == {"loyalty.ledger": 2, "loyalty.balances": 1}
    assert rows(analytics, "core.customers") == [
        (
            "C_BOB",
            pseudonym("Bob", SALT),
            pseudonym("bob@example.com", SALT),
            pseudonym(SHARED_PHONE, SALT),
        )
    ]
    assert [r[2] for r in rows(analytics, "quality.quarantine")] == ["web/customers_1.csv"]
    assert rows(analytics, "identity.source_records") == [("web", "W2", "C_BOB")]

    # Scrubbing again finds nothing more and rewrites nothing.
    again = scrub_previous_versions(warehouse, erased)
    assert not any(r.rewritten or r.deleted or r.rekeyed for r in again)


def test_find_erased_values_everywhere_before_and_after_scrubbing(place):
    warehouse, old, erased = place
    before = find_erased_values_everywhere(warehouse, None, erased)
    assert before.found[f"{old}: core.customers"] == 1
    assert before.found[f"{old}: loyalty.ledger"] == 2  # under an id that still leads to Ann
    assert not any("raw.web_orders" in place for place in before.found)
    scrub_previous_versions(warehouse, erased)
    assert find_erased_values_everywhere(warehouse, None, erased).clean

    # A failed build nobody scrubbed (a copy of the old file before scrubbing) is found ...
    warehouse.builds_dir.mkdir()
    failed = warehouse.builds_dir / "run-failed.duckdb"
    build_previous_version(failed)
    (warehouse.builds_dir / "run-failed.source.json").write_text("{}")
    current = warehouse.builds_dir / "run-now.duckdb"
    connect(current).close()
    leftovers = find_erased_values_everywhere(warehouse, None, erased, skip=(current,))
    assert leftovers.found[f"{failed}: core.customers"] == 1
    assert leftovers.found[f"{failed}: raw.web_customers"] == 1
    assert not any(str(old) in place for place in leftovers.found)
    # ... and removed whole, the current run's build kept.
    removed = remove_failed_builds(warehouse, "run-now")
    assert sorted(p.name for p in removed) == ["run-failed.duckdb", "run-failed.source.json"]
    assert current.exists()
    assert find_erased_values_everywhere(warehouse, None, erased).clean


def test_nothing_is_rewritten_when_nobody_was_erased(place, tmp_path):
    warehouse, old, _ = place
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    before = old.stat()
    nobody = read_erased_people(empty, SALT)
    assert nobody.is_empty
    assert not any(r.rewritten for r in scrub_previous_versions(warehouse, nobody))
    assert old.stat().st_mtime_ns == before.st_mtime_ns


# --- exports ----------------------------------------------------------------------------

PROGRAM_SEGMENTS = """
  custom:
    - name: Push Gold
      channel: push
      where:
        - {column: tier, op: "=", value: Gold}
"""


def build_marts(con, tmp_path):
    """Ann (C_ANN: e-mail, shared phone, app account U1) and Bob (C_BOB: shared phone) in
    Champions and Push Gold; Cy (C_CY) in Lost."""
    con.execute(
        "create table core.customers as select *, timestamp '2026-01-02 03:04:05' as email_consent_stated_at, "
        "timestamp '2026-01-02 03:04:05' as push_consent_stated_at from (values "
        f"('C_ANN', 'Ann', 'Smith', '{ANN_EMAIL}', '{SHARED_PHONE}', date '1985-03-04', 'Leeds', 'LS1 1AA', 'GB', true, true), "
        f"('C_BOB', 'Bob', 'Smith', 'bob@example.com', '{SHARED_PHONE}', null, 'Leeds', 'LS1 1AA', 'GB', true, true), "
        "('C_CY', '=cmd', 'Lee', 'cy@example.com', null, null, null, null, 'GB', true, false)"
        ") t(customer_id, first_name, last_name, email, phone_e164, birth_on, city, postcode, country, "
        "has_email_consent, has_push_consent)"
    )
    con.execute(
        "create table identity.source_records as select * from (values ('app', 'U1', 'C_ANN')) "
        "t(source, source_record_id, customer_id)"
    )
    con.execute(
        "create table loyalty.balances as select * from (values ('C_ANN', 'Gold', 10), "
        "('C_BOB', 'Gold', 0), ('C_CY', 'Silver', 5)) t(customer_id, tier, points_balance)"
    )
    con.execute(
        "create table marts.segments as select *, date '2026-02-01' as as_of_on from (values "
        "('C_ANN', 'Champions', 5, 5, 5, 1, 9, 900.5), ('C_BOB', 'Champions', 5, 5, 5, 2, 8, 800.0), "
        "('C_CY', 'Lost', 1, 1, 1, 400, 1, 10.0)) "
        "t(customer_id, rfm_segment, r_score, f_score, m_score, recency_days, frequency, historical_value)"
    )
    con.execute(
        "create table marts.segment_memberships as "
        "select customer_id, 'rfm' as segmentation, rfm_segment as segment from marts.segments "
        "union all select customer_id, 'custom', 'Push Gold' from loyalty.balances where tier = 'Gold'"
    )
    bundled = (load_program.__defaults__[0]).read_text()
    start, end = bundled.index("  custom:"), bundled.index("rfm_segments:")
    program_path = tmp_path / "program.yaml"
    program_path.write_text(bundled[:start] + PROGRAM_SEGMENTS + "\n" + bundled[end:])
    return load_program(program_path)


def write_exports(exports_dir, tmp_path, as_of=date(2026, 2, 1)):
    con = connect(":memory:")
    program = build_marts(con, tmp_path)
    write_segment_exports(con, program, exports_dir, as_of)
    write_segment_exports(con, program, exports_dir, as_of, formats=("csv",), platform="google")
    write_segment_exports(con, program, exports_dir, as_of, formats=("csv",), platform="meta")
    con.close()
    return exports_dir / as_of.isoformat()


def read_any(path):
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pandas()
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def test_exports_lose_the_erased_person_and_the_manifest_describes_the_disk(tmp_path):
    folder = write_exports(tmp_path / "exports", tmp_path)
    names = sorted(p.name for p in folder.iterdir())
    assert "rfm_champions.google.csv" in names and "custom_push_gold.meta.csv" in names
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    frames = {p.name: read_any(p) for p in folder.iterdir() if p.suffix in (".csv", ".parquet")}
    assert "C_ANN" in set(frames["rfm_champions.csv"]["customer_id"])
    # The erasure completed after these files were written.
    source = tmp_path / "source.duckdb"
    build_suppression_source(
        source, completed_at=datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)
    )
    erased = read_erased_people(source, SALT)
    assert find_erased_values_everywhere(
        Warehouse(tmp_path / "none.duckdb"), tmp_path / "exports", erased
    ).found

    result = scrub_exports(tmp_path / "exports", erased)

    assert sorted(result.removed) == [
        "2026-02-01/custom_push_gold.google.csv",
        "2026-02-01/rfm_champions.google.csv",
        "2026-02-01/rfm_lost.google.csv",
    ]
    assert result.rewritten == {
        "2026-02-01/rfm_champions.csv": 1,
        "2026-02-01/rfm_champions.parquet": 1,
        "2026-02-01/custom_push_gold.csv": 1,
        "2026-02-01/custom_push_gold.parquet": 1,
        "2026-02-01/rfm_champions.meta.csv": 1,
        "2026-02-01/custom_push_gold.meta.csv": 1,
    }
    for path in folder.iterdir():
        if path.suffix not in (".csv", ".parquet"):
            continue
        frame = read_any(path)
        assert not frame.isin(["C_ANN"]).any().any(), path.name
        assert (
            not frame.astype(str).apply(lambda c: c.str.lower().str.contains(ANN_EMAIL)).any().any()
        )
        old = frames[path.name]
        id_column = "extern_id" if "extern_id" in old else "customer_id"
        expected = old[old[id_column] != "C_ANN"].reset_index(drop=True)
        pd.testing.assert_frame_equal(frame, expected)
    # The rest of a CSV is byte for byte what the export wrote (byte-order mark, CRLF, quoting).
    ann_line = next(
        line for line in before["rfm_champions.csv"].split(b"\r\n") if line.startswith(b"C_ANN,")
    )
    assert (folder / "rfm_champions.csv").read_bytes() == before["rfm_champions.csv"].replace(
        ann_line + b"\r\n", b""
    )
    assert (folder / "rfm_lost.csv").read_bytes() == before["rfm_lost.csv"]  # Cy's: untouched

    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {
        spec["file"]: entry for entry in manifest["files"] for spec in entry["files"].values()
    }
    on_disk = {p.name for p in folder.iterdir() if p.suffix in (".csv", ".parquet")}
    assert set(listed) == on_disk
    for entry in manifest["files"]:
        for spec in entry["files"].values():
            path = folder / spec["file"]
            assert spec["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), spec["file"]
            assert entry["rows"] == len(read_any(path)), spec["file"]
    assert sorted(r["segment"] for r in manifest["removed_by_erasure"]) == [
        "Champions",
        "Lost",
        "Push Gold",
    ]
    assert find_erased_values_everywhere(
        Warehouse(tmp_path / "none.duckdb"), tmp_path / "exports", erased
    ).clean


def test_a_google_file_written_after_the_erasure_is_kept(tmp_path):
    source = tmp_path / "source.duckdb"
    build_suppression_source(source, completed_at=datetime(2026, 1, 1))
    erased = read_erased_people(source, SALT)
    con = connect(":memory:")
    program = build_marts(con, tmp_path)
    # Exports of a warehouse the erasure already reached: Ann is not in it.
    con.execute("delete from marts.segment_memberships where customer_id = 'C_ANN'")
    write_segment_exports(con, program, tmp_path / "exports", date(2026, 2, 1), platform="google")
    con.close()
    folder = tmp_path / "exports" / "2026-02-01"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = scrub_exports(tmp_path / "exports", erased)
    assert result.removed == [] and result.rewritten == {}
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


# --- Splink's charts ----------------------------------------------------------------------


def test_record_level_charts_of_past_dates_are_removed(tmp_path):
    charts = (
        "cluster_studio.html",
        "waterfall.html",
        "match_weights.html",
        "m_u_parameters.html",
        "splink_model.json",
    )
    for as_of in ("2026-01-31", "2026-02-01"):
        folder = tmp_path / "identity" / as_of
        folder.mkdir(parents=True)
        for name in charts:
            (folder / name).write_text("<html></html>")
    source = tmp_path / "source.duckdb"
    build_suppression_source(source)
    erased = read_erased_people(source, SALT)
    nowhere = Warehouse(tmp_path / "none.duckdb")
    found = find_erased_values_everywhere(
        nowhere, None, erased, tmp_path, keep_as_of=date(2026, 2, 1)
    )
    assert sorted(found.found) == [
        str(tmp_path / "identity" / "2026-01-31" / "cluster_studio.html"),
        str(tmp_path / "identity" / "2026-01-31" / "waterfall.html"),
    ]
    removed = remove_record_level_charts(tmp_path, keep_as_of=date(2026, 2, 1))
    assert sorted(p.name for p in removed) == ["cluster_studio.html", "waterfall.html"]
    assert sorted(p.name for p in (tmp_path / "identity" / "2026-01-31").iterdir()) == [
        "m_u_parameters.html",
        "match_weights.html",
        "splink_model.json",
    ]
    assert len(list((tmp_path / "identity" / "2026-02-01").iterdir())) == 5  # this run's
    assert find_erased_values_everywhere(
        nowhere, None, erased, tmp_path, keep_as_of=date(2026, 2, 1)
    ).clean
    shutil.rmtree(tmp_path / "identity")
