"""Segment export files: consent filtering, the spreadsheet formula guard, the manifest."""

import csv
import hashlib
import json
import os
from datetime import date

import duckdb
import pyarrow.parquet as pq
import pytest

from assets.exports.segment_files import (
    neutralize_formula,
    segment_file_name,
    write_segment_exports,
)
from assets.loyalty.program import load_program
from assets.shared.warehouse import connect


@pytest.mark.parametrize(
    "cell, safe",
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("+447911123456", "+447911123456"),  # an E.164 phone stays readable
        ("-12.50", "-12.50"),
        ("Anne-Marie", "Anne-Marie"),
        (42, 42),
        (None, None),
    ],
)
def test_neutralize_formula(cell, safe):
    assert neutralize_formula(cell) == safe


def test_segment_file_names():
    assert segment_file_name("Can't Lose Them") == "cant_lose_them"
    assert segment_file_name("Potential Loyalists") == "potential_loyalists"


PROGRAM_SEGMENTS = """
  custom:
    - name: Push Gold
      channel: push
      where:
        - {column: tier, op: "=", value: Gold}
"""


@pytest.fixture
def warehouse(tmp_path):
    con = connect(":memory:")
    con.execute(
        """
        create table core.customers as select * from (values
            ('C1', '=HYPERLINK("http://x")', 'A@Example.com', '+447911123456', true, false),
            ('C2', 'Bob', 'b@example.com', null, false, true),
            ('C3', 'Cy', null, null, true, true),
            ('C4', 'Di', 'd@example.com', null, true, false)
        ) t(customer_id, first_name, email, phone_e164, has_email_consent, has_push_consent)
        """
    )
    con.execute(
        "alter table core.customers add column email_consent_stated_at timestamp "
        "default timestamp '2026-01-02 03:04:05'"
    )
    con.execute(
        "alter table core.customers add column push_consent_stated_at timestamp "
        "default timestamp '2026-02-03 04:05:06'"
    )
    # C2 has two app accounts, C3 one; push audiences carry the account push tools address.
    con.execute(
        "create table identity.source_records as select * from (values ('app', 'U7', 'C2'), "
        "('app', 'U9', 'C2'), ('app', 'U3', 'C3'), ('web', 'W1', 'C1')) t(source, source_record_id, customer_id)"
    )
    con.execute(
        "create table loyalty.balances as select * from (values ('C1', 'Gold', 10), ('C2', 'Gold', 0), "
        "('C3', 'Gold', 0), ('C4', 'Silver', 5)) t(customer_id, tier, points_balance)"
    )
    con.execute(
        "create table marts.segments as select * from (values "
        "('C1', 'Champions', 5, 5, 5, 1, 9, 900.0, 'active'), ('C2', 'Champions', 5, 5, 5, 2, 8, 800.0, 'active'), "
        "('C3', 'Champions', 5, 5, 5, 3, 7, 700.0, 'active'), ('C4', 'Lost', 1, 1, 1, 400, 1, 10.0, 'churned')) "
        "t(customer_id, rfm_segment, r_score, f_score, m_score, recency_days, frequency, historical_value, lifecycle_stage)"
    )
    con.execute(
        "create table marts.custom_segment_members as select customer_id, 'Push Gold' as segment, 'push' as channel "
        "from loyalty.balances where tier = 'Gold'"
    )
    con.execute(
        "create table marts.segment_memberships as "
        "select customer_id, 'rfm' as segmentation, rfm_segment as segment from marts.segments "
        "union all select customer_id, 'custom', segment from marts.custom_segment_members"
    )
    # Campaign Spring (test_a_campaign_exports_its_treated_members_only): C4 held out.
    con.execute(
        "create table loyalty.campaign_assignments as select * from (values ('Spring', 'C1', 'treatment'), "
        "('Spring', 'C2', 'treatment'), ('Spring', 'C4', 'holdout')) t(campaign, customer_id, arm)"
    )
    bundled = (load_program.__defaults__[0]).read_text()
    start, end = bundled.index("  custom:"), bundled.index("rfm_segments:")
    program_path = tmp_path / "program.yaml"
    program_path.write_text(bundled[:start] + PROGRAM_SEGMENTS + "\n" + bundled[end:])
    yield con, load_program(program_path)
    con.close()


def read_csv(path):
    with path.open(newline="", encoding="utf-8-sig") as handle:  # the BOM Excel needs
        return list(csv.DictReader(handle))


def test_exports_hold_only_consented_customers_and_are_formula_safe(tmp_path, warehouse):
    con, program = warehouse
    files = write_segment_exports(con, program, tmp_path, date(2026, 6, 30))
    folder = tmp_path / "2026-06-30"
    rows = read_csv(folder / "rfm_champions.csv")
    # E-mail audience: C2 has no e-mail consent, C3 no e-mail; only C1 is left.
    assert [(r["customer_id"], r["first_name"], r["phone_e164"], r["tier"]) for r in rows] == [
        ("C1", '\'=HYPERLINK("http://x")', "+447911123456", "Gold")
    ]
    # An e-mail audience says when each customer consented; then why they are in the segment.
    assert rows[0]["consent_stated_at"] == "2026-01-02 03:04:05"
    assert list(rows[0])[7:] == [
        "rfm_segment",
        "r_score",
        "f_score",
        "m_score",
        "recency_days",
        "frequency",
        "historical_value",
    ]
    # Push audience of the custom segment: the Gold customers whose latest push statement is consent.
    push_rows = read_csv(folder / "custom_push_gold.csv")
    assert [r["customer_id"] for r in push_rows] == ["C2", "C3"]
    # ...with the app account push tools address, and when they consented to push.
    assert [(r["app_user_id"], r["consent_stated_at"]) for r in push_rows] == [
        ("U9", "2026-02-03 04:05:06"),
        ("U3", "2026-02-03 04:05:06"),
    ]
    # Parquet holds the same rows, typed and without the spreadsheet guard.
    parquet = pq.read_table(folder / "rfm_champions.parquet").to_pylist()
    assert [(r["customer_id"], r["first_name"], r["points_balance"]) for r in parquet] == [
        ("C1", '=HYPERLINK("http://x")', 10)
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [
        (f["segmentation"], f["segment"], f["channel"], f["rows"]) for f in manifest["files"]
    ] == [
        ("custom", "Push Gold", "push", 2),
        ("rfm", "Champions", "email", 1),
        ("rfm", "Lost", "email", 1),
    ]
    assert manifest["files"] == sorted(files, key=lambda f: (f["segmentation"], f["segment"]))
    champions = next(f for f in files if f["segment"] == "Champions")
    for kind in ("csv", "parquet"):
        path = folder / champions["files"][kind]["file"]
        assert champions["files"][kind]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_ad_platform_hashes(tmp_path, warehouse):
    con, program = warehouse
    write_segment_exports(
        con, program, tmp_path, date(2026, 6, 30), formats=("csv",), hashes=True, only="Champions"
    )
    (row,) = read_csv(tmp_path / "2026-06-30" / "rfm_champions.csv")
    # Normalized before hashing: the e-mail trimmed and lower-cased; the phone in E.164 with
    # its + (Google Customer Match) and as digits only (Meta).
    assert row["email_sha256"] == hashlib.sha256(b"a@example.com").hexdigest()
    assert row["phone_sha256"] == hashlib.sha256(b"+447911123456").hexdigest()
    assert row["phone_digits_sha256"] == hashlib.sha256(b"447911123456").hexdigest()


def test_re_exporting_one_segment_keeps_the_others_in_the_manifest(tmp_path, warehouse):
    con, program = warehouse
    write_segment_exports(con, program, tmp_path, date(2026, 6, 30))
    (entry,) = write_segment_exports(
        con, program, tmp_path, date(2026, 6, 30), formats=("parquet",), only="Lost"
    )
    assert entry["segment"] == "Lost" and list(entry["files"]) == ["parquet"]
    manifest = json.loads((tmp_path / "2026-06-30" / "manifest.json").read_text())
    assert [f["segment"] for f in manifest["files"]] == ["Push Gold", "Champions", "Lost"]
    with pytest.raises(ValueError, match="no segment named 'Nobody'"):
        write_segment_exports(con, program, tmp_path, date(2026, 6, 30), only="Nobody")


def program_with_custom(tmp_path, custom_yaml):
    bundled = (load_program.__defaults__[0]).read_text()
    start, end = bundled.index("  custom:"), bundled.index("rfm_segments:")
    path = tmp_path / "program.yaml"
    path.write_text(bundled[:start] + custom_yaml + "\n" + bundled[end:])
    return path


def test_segment_names_that_would_share_a_file_are_refused(tmp_path, warehouse):
    """Issue 12: `VIP` and `vip!` both wrote custom_vip.csv; one audience overwrote the other."""
    from assets.loyalty.program import ProgramError

    colliding = program_with_custom(
        tmp_path,
        PROGRAM_SEGMENTS
        + """    - name: VIP
      channel: email
      where:
        - {column: tier, op: "=", value: Gold}
    - name: vip!
      channel: push
      where:
        - {column: tier, op: "=", value: Gold}
""",
    )
    with pytest.raises(
        ProgramError, match=r"segments 'VIP' and 'vip!' would both be exported as custom_vip\.csv"
    ):
        load_program(colliding)
    nameless = program_with_custom(
        tmp_path,
        """  custom:
    - name: "!!!"
      channel: email
      where:
        - {column: tier, op: "=", value: Gold}
""",
    )
    with pytest.raises(ProgramError, match="'!!!' needs a letter or digit"):
        load_program(nameless)
    # At export too, however the names arrived.
    import dataclasses

    con, program = warehouse
    (push_gold,) = program.segmentation.custom
    twins = [push_gold, dataclasses.replace(push_gold, name="PUSH-gold")]
    program = dataclasses.replace(
        program, segmentation=dataclasses.replace(program.segmentation, custom=twins)
    )
    with pytest.raises(
        ValueError, match="'Push Gold' and 'PUSH-gold' would both be exported as custom_push_gold"
    ):
        write_segment_exports(con, program, tmp_path / "exports", date(2026, 6, 30))
    assert not (tmp_path / "exports" / "2026-06-30").exists()


def test_a_run_stages_its_exports_and_the_publish_swaps_them_in_whole(tmp_path, warehouse):
    """Issue 12: exports were rewritten in place before the publish; a kill left a mix of two runs."""
    from assets.exports.segment_files import (
        clean_export_staging,
        publish_segment_exports,
        staging_dir,
    )

    con, program = warehouse
    exports, as_of = tmp_path / "exports", date(2026, 6, 30)
    folder = exports / "2026-06-30"
    write_segment_exports(con, program, staging_dir(exports, "run1"), as_of)
    assert not folder.exists()  # nothing visible before the publish
    assert publish_segment_exports(exports, "run1") == [folder]
    assert not staging_dir(exports, "run1").exists()
    (folder / "stale_segment.csv").write_text("left by an older set\n")
    first = json.loads((folder / "manifest.json").read_text())

    # A run that fails after writing its exports publishes none of them.
    con.execute("update core.customers set first_name = 'Changed'")
    write_segment_exports(con, program, staging_dir(exports, "failed"), as_of)
    assert json.loads((folder / "manifest.json").read_text()) == first
    assert [p.name for p in clean_export_staging(exports)] == ["failed"]
    assert not (exports / ".staging").exists()

    # The next run's set replaces the folder whole: files, manifest, and no file of the old set.
    write_segment_exports(con, program, staging_dir(exports, "run2"), as_of, formats=("csv",))
    publish_segment_exports(exports, "run2")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest != first
    listed = {entry["files"]["csv"]["file"] for entry in manifest["files"]}
    assert {p.name for p in folder.iterdir()} == listed | {"manifest.json"}
    for entry in manifest["files"]:
        assert (
            entry["files"]["csv"]["sha256"]
            == hashlib.sha256((folder / entry["files"]["csv"]["file"]).read_bytes()).hexdigest()
        )
    assert "Changed" in (folder / "rfm_champions.csv").read_text()
    assert not staging_dir(exports, "run2").exists()


def test_a_run_killed_between_the_two_swaps_has_its_exports_put_in_place_by_the_next(
    tmp_path, warehouse
):
    from assets.exports.segment_files import (
        clean_export_staging,
        finish_interrupted_publish,
        mark_publishing,
        publish_segment_exports,
        staging_dir,
    )
    from assets.shared.warehouse import file_identity

    con, program = warehouse
    exports, as_of, folder = (
        tmp_path / "exports",
        date(2026, 6, 30),
        tmp_path / "exports" / "2026-06-30",
    )
    write_segment_exports(con, program, staging_dir(exports, "old"), as_of)
    publish_segment_exports(exports, "old")
    old_manifest = (folder / "manifest.json").read_text()
    published = tmp_path / "omniloyal.duckdb"
    published.write_bytes(b"the old warehouse")

    # Run "killed": its exports staged and marked, its build renamed over the published
    # file, then nothing more. Run "refused": marked, but its build never went out.
    con.execute("update core.customers set first_name = 'Killed'")
    for run in ("killed", "refused"):
        write_segment_exports(con, program, staging_dir(exports, run), as_of)
        build = tmp_path / f"{run}.duckdb"
        build.write_bytes(f"the build of {run}".encode())
        mark_publishing(exports, run, file_identity(build.stat()))
    os.replace(tmp_path / "killed.duckdb", published)
    assert (
        folder / "manifest.json"
    ).read_text() == old_manifest  # the new warehouse beside the old exports

    assert finish_interrupted_publish(exports, file_identity(published.stat())) == [folder]
    assert "Killed" in (folder / "rfm_champions.csv").read_text()
    assert (folder / "manifest.json").read_text() != old_manifest
    assert [p.name for p in clean_export_staging(exports)] == ["refused"]
    assert finish_interrupted_publish(exports, file_identity(published.stat())) == []


def test_every_file_reads_back_in_pandas_pyarrow_and_duckdb_with_each_column_once(
    tmp_path, warehouse
):
    import codecs

    import pandas as pd

    con, program = warehouse  # "Push Gold" is defined on tier, a column every file has already
    write_segment_exports(con, program, tmp_path, date(2026, 6, 30))
    folder = tmp_path / "2026-06-30"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["written_at"] and {entry["segment"] for entry in manifest["files"]} >= {
        "Push Gold"
    }
    for entry in manifest["files"]:
        columns = entry["columns"]
        assert len(columns) == len(set(columns)), columns
        assert entry["hashing"] == "none" and entry["written_at"]
        csv_path, parquet_path = (
            folder / entry["files"][kind]["file"] for kind in ("csv", "parquet")
        )
        assert csv_path.read_bytes().startswith(codecs.BOM_UTF8)
        frame = pd.read_csv(csv_path, dtype=str)
        assert list(frame.columns) == columns and len(frame) == entry["rows"]
        assert pq.read_table(parquet_path).column_names == columns
        assert pd.read_parquet(parquet_path).shape == (entry["rows"], len(columns))
        read_back = duckdb.sql(f"select * from read_csv('{csv_path}', all_varchar = true)")
        assert read_back.columns == columns
    push = next(entry for entry in manifest["files"] if entry["segment"] == "Push Gold")
    assert push["columns"] == [
        "customer_id",
        "first_name",
        "email",
        "phone_e164",
        "tier",
        "points_balance",
        "app_user_id",
        "consent_stated_at",
    ]


def test_csv_cells_for_spreadsheets():
    from assets.exports.segment_files import csv_cell

    assert (csv_cell(True), csv_cell(False), csv_cell(None), csv_cell(3)) == (
        "true",
        "false",
        None,
        3,
    )
    assert csv_cell("=1+1") == "'=1+1"


def test_a_re_export_of_one_format_leaves_the_manifest_describing_the_files_on_disk(
    tmp_path, warehouse
):
    con, program = warehouse
    folder = tmp_path / "2026-06-30"
    write_segment_exports(con, program, tmp_path, date(2026, 6, 30))
    assert (folder / "rfm_lost.parquet").exists()
    write_segment_exports(
        con, program, tmp_path, date(2026, 6, 30), formats=("csv",), hashes=True, only="Lost"
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    lost = next(entry for entry in manifest["files"] if entry["segment"] == "Lost")
    assert list(lost["files"]) == ["csv"] and lost["hashing"] == "added"
    assert "email_sha256" in lost["columns"]
    assert not (folder / "rfm_lost.parquet").exists()  # no stale file of another shape beside it
    listed = {f["file"] for entry in manifest["files"] for f in entry["files"].values()}
    assert {p.name for p in folder.iterdir()} == listed | {"manifest.json"}


def test_a_campaign_exports_its_treated_members_only(tmp_path, warehouse):
    import dataclasses

    from assets.loyalty.program import Campaign

    con, program = warehouse
    spring = Campaign(
        name="Spring",
        starts_on=date(2026, 3, 1),
        ends_on=date(2026, 3, 31),
        channel="email",
        lifecycle=None,
        tiers=None,
        min_spend_12m=None,
        reward_multiplier=2.0,
        reward_bonus_points=None,
        budget_points=100,
        cap_per_member=10,
        holdout_share=0.5,
    )
    # Autumn has not started: no member in loyalty.campaign_assignments, no file.
    autumn = dataclasses.replace(spring, name="Autumn", starts_on=date(2026, 9, 1))
    program = dataclasses.replace(program, campaigns=(spring, autumn))
    files = write_segment_exports(con, program, tmp_path, date(2026, 6, 30))
    folder = tmp_path / "2026-06-30"
    assert not (folder / "campaign_autumn.csv").exists()
    # Treated: C1 (e-mail consent) and C2 (no e-mail consent: left out); C4 is held out, although
    # she has e-mail consent.
    rows = read_csv(folder / "campaign_spring.csv")
    assert [(r["customer_id"], r["email"]) for r in rows] == [("C1", "A@Example.com")]
    entry = next(f for f in files if f["segmentation"] == "campaign")
    assert (entry["segment"], entry["channel"], entry["rows"]) == ("Spring", "email", 1)
