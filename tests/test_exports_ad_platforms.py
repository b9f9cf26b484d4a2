"""Hashed-only audience files for Google Customer Match and Meta custom audiences (issue 14)."""

import hashlib
import json
from datetime import date

import pandas as pd
import pytest

from assets.exports.segment_files import write_segment_exports
from assets.loyalty.program import load_program
from assets.shared.warehouse import connect
from pipelines.cli import main

AS_OF = date(2026, 6, 30)

# A push segment: ad-platform files take marketing consent, not the segment's channel's.
PROGRAM_SEGMENTS = """
  custom:
    - name: Push Gold
      channel: push
      where:
        - {column: tier, op: "=", value: Gold}
"""

# The plain values of every identifier in the fixture: none may reach an ad-platform file.
PLAIN = {
    "A.Smith@Example.com ",
    "a.smith@example.com",
    "b@example.com",
    "e@example.com",
    "+447911123456",
    "447911123456",
    "+12025550143",
    "12025550143",
    "Anne-Marie",
    "O'Neil",
    "Bob",
    "Jones",
    "Cy",
    "Lee",
    "Di",
    "Eve",
    "Stone",
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_warehouse(con, tmp_path):
    # C1 consented, every field; C2 no marketing consent (push only); C3 consented with a phone
    # and no e-mail, in the US; C4 consented with nothing a platform matches on; C5 in Lost.
    con.execute(
        """
        create table core.customers as select * from (values
            ('C1', 'Anne-Marie', 'O''Neil', 'A.Smith@Example.com ', '+447911123456', date '1985-03-04',
             'Stoke-on-Trent', 'ST1 5AB', 'GB', true, false),
            ('C2', 'Bob', 'Jones', 'b@example.com', null, null, null, null, null, false, true),
            ('C3', 'Cy', 'Lee', null, '+12025550143', null, 'Washington', '20500-0003', 'US', true, true),
            ('C4', 'Di', null, null, null, null, null, null, null, true, false),
            ('C5', 'Eve', 'Stone', 'e@example.com', null, null, null, null, null, true, false)
        ) t(customer_id, first_name, last_name, email, phone_e164, birth_on, city, postcode,
            country, has_email_consent, has_push_consent)
        """
    )
    for channel in ("email", "push"):
        con.execute(
            f"alter table core.customers add column {channel}_consent_stated_at timestamp "
            "default timestamp '2026-01-02 03:04:05'"
        )
    con.execute(
        "create table identity.source_records as select * from (values ('app', 'U1', 'C2')) "
        "t(source, source_record_id, customer_id)"
    )
    con.execute(
        "create table loyalty.balances as select * from (values ('C1', 'Gold', 10), ('C2', 'Gold', 0), "
        "('C3', 'Gold', 0), ('C4', 'Gold', 0), ('C5', 'Silver', 5)) t(customer_id, tier, points_balance)"
    )
    con.execute(
        "create table marts.segments as select *, date '2026-06-30' as as_of_on from (values "
        "('C1', 'Champions', 5, 5, 5, 1, 9, 900.0), ('C2', 'Champions', 5, 5, 5, 2, 8, 800.0), "
        "('C3', 'Champions', 5, 5, 5, 3, 7, 700.0), ('C4', 'Champions', 5, 5, 5, 3, 7, 700.0), "
        "('C5', 'Lost', 1, 1, 1, 400, 1, 10.0)) "
        "t(customer_id, rfm_segment, r_score, f_score, m_score, recency_days, frequency, historical_value)"
    )
    con.execute(
        "create table marts.segment_memberships as "
        "select customer_id, 'rfm' as segmentation, rfm_segment as segment from marts.segments "
        "union all select customer_id, 'custom', 'Push Gold' from loyalty.balances where tier = 'Gold'"
    )
    # Campaign Spring: C1 and C2 treated, C5 held out (test_a_campaign_file_holds_its_treated_members_only).
    con.execute(
        "create table loyalty.campaign_assignments as select * from (values ('Spring', 'C1', 'treatment'), "
        "('Spring', 'C2', 'treatment'), ('Spring', 'C5', 'holdout')) t(campaign, customer_id, arm)"
    )
    bundled = (load_program.__defaults__[0]).read_text()
    start, end = bundled.index("  custom:"), bundled.index("rfm_segments:")
    program_path = tmp_path / "program.yaml"
    program_path.write_text(bundled[:start] + PROGRAM_SEGMENTS + "\n" + bundled[end:])
    return program_path


@pytest.fixture
def warehouse(tmp_path):
    con = connect(":memory:")
    program_path = build_warehouse(con, tmp_path)
    yield con, load_program(program_path)
    con.close()


def read_back(path):
    """As a platform's uploader reads it: every cell text, empty cells empty."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def assert_no_plain_identifier(frame):
    for column in frame.columns:
        for value in frame[column]:
            assert "@" not in value, column
            assert value not in PLAIN, (column, value)
            assert not any(len(p) > 3 and p.lower() in value.lower() for p in PLAIN), column


def test_a_google_file_holds_only_hashes_and_the_plain_country_and_zip(tmp_path, warehouse):
    con, program = warehouse
    (entry,) = write_segment_exports(
        con, program, tmp_path, AS_OF, formats=("csv",), only="Champions", platform="google"
    )
    path = tmp_path / "2026-06-30" / "rfm_champions.google.csv"
    # Plain UTF-8, no byte-order mark: the first header must read `Email` to the uploader.
    assert path.read_bytes().startswith(b"Email,Phone,First Name,Last Name,Country,Zip\r\n")
    frame = read_back(path)
    assert list(frame.columns) == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
    # C2 never consented to marketing, C4 has nothing to match on: C1 and C3 are left.
    assert len(frame) == entry["rows"] == 2
    c1, c3 = frame.to_dict("records")
    # Hand-computed: the e-mail trimmed and lower-cased, the phone in E.164 with its +.
    # (`printf 'a.smith@example.com' | sha256sum`)
    assert c1["Email"] == "09e466b887f4bbef2cac5baf873c6e4a21e35c324d4cb868c9afbd98a4d22b3f"
    assert c1["Phone"] == sha("+447911123456")
    assert (c1["First Name"], c1["Last Name"]) == (sha("anne-marie"), sha("o'neil"))
    assert (c1["Country"], c1["Zip"]) == ("GB", "ST1 5AB")  # matched in clear by Google
    assert (c3["Email"], c3["Phone"], c3["Zip"]) == ("", sha("+12025550143"), "20500-0003")
    assert_no_plain_identifier(frame)
    assert entry["platform"] == "google" and entry["hashing"] == "only"


def test_a_meta_file_follows_metas_normalisation(tmp_path, warehouse):
    con, program = warehouse
    write_segment_exports(
        con, program, tmp_path, AS_OF, formats=("csv",), only="Champions", platform="meta"
    )
    frame = read_back(tmp_path / "2026-06-30" / "rfm_champions.meta.csv")
    assert list(frame.columns) == [
        "email",
        "phone",
        "fn",
        "ln",
        "zip",
        "ct",
        "country",
        "doby",
        "extern_id",
    ]
    c1, c3 = frame.to_dict("records")
    assert c1 == {
        "email": sha("a.smith@example.com"),
        "phone": sha("447911123456"),  # digits only, country code, no +
        "fn": sha("annemarie"),  # lower-case letters only
        "ln": sha("oneil"),
        "zip": sha("st15ab"),  # lower case, no spaces
        "ct": sha("stokeontrent"),
        "country": sha("gb"),
        "doby": sha("1985"),
        "extern_id": "C1",  # our customer_id, the one value Meta takes plain
    }
    assert c3["zip"] == sha("20500")  # a US zip: its first five digits
    assert c3["email"] == "" and c3["doby"] == ""  # nothing known: an empty cell, not sha256('')
    assert_no_plain_identifier(frame)


def test_ad_platform_files_take_marketing_consent_whatever_the_segments_channel(
    tmp_path, warehouse
):
    con, program = warehouse
    # Push Gold's members C1-C4; C2 consented to push but not to marketing.
    write_segment_exports(
        con, program, tmp_path, AS_OF, formats=("csv",), only="Push Gold", platform="meta"
    )
    frame = read_back(tmp_path / "2026-06-30" / "custom_push_gold.meta.csv")
    assert list(frame["extern_id"]) == ["C1", "C3"]


def test_the_manifest_lists_exactly_the_files_on_disk_after_any_re_export(tmp_path, warehouse):
    con, program = warehouse
    folder = tmp_path / "2026-06-30"

    def assert_manifest_matches_disk():
        manifest = json.loads((folder / "manifest.json").read_text())
        listed = {f["file"]: f["sha256"] for e in manifest["files"] for f in e["files"].values()}
        assert set(listed) | {"manifest.json"} == {p.name for p in folder.iterdir()}
        for name, checksum in listed.items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == checksum, name
        for entry in manifest["files"]:
            assert entry["written_at"] and entry["columns"]
            for f in entry["files"].values():
                path = folder / f["file"]
                frame = read_back(path) if path.suffix == ".csv" else pd.read_parquet(path)
                assert list(frame.columns) == entry["columns"] and len(frame) == entry["rows"]
        return manifest

    write_segment_exports(con, program, tmp_path, AS_OF)
    write_segment_exports(con, program, tmp_path, AS_OF, only="Champions", platform="google")
    write_segment_exports(
        con, program, tmp_path, AS_OF, formats=("parquet",), only="Champions", platform="meta"
    )
    manifest = assert_manifest_matches_disk()
    modes = {(e["segment"], e["platform"], e["hashing"]) for e in manifest["files"]}
    assert modes == {
        ("Push Gold", None, "none"),
        ("Champions", None, "none"),
        ("Lost", None, "none"),
        ("Champions", "google", "only"),
        ("Champions", "meta", "only"),
    }
    # One format of the plain file again, with hashes: its Parquet file goes, the platforms' stay.
    write_segment_exports(
        con, program, tmp_path, AS_OF, formats=("csv",), hashes=True, only="Champions"
    )
    # The Meta file again as CSV: its Parquet file goes.
    write_segment_exports(
        con, program, tmp_path, AS_OF, formats=("csv",), only="Champions", platform="meta"
    )
    manifest = assert_manifest_matches_disk()
    champions = {e["platform"]: e for e in manifest["files"] if e["segment"] == "Champions"}
    assert champions[None]["hashing"] == "added" and list(champions[None]["files"]) == ["csv"]
    assert list(champions["meta"]["files"]) == ["csv"]
    assert not (folder / "rfm_champions.parquet").exists()
    # A file removed by hand leaves the manifest at the next export.
    (folder / "rfm_lost.parquet").unlink()
    (folder / "custom_push_gold.csv").unlink()
    (folder / "custom_push_gold.parquet").unlink()
    write_segment_exports(con, program, tmp_path, AS_OF, only="Lost", platform="google")
    manifest = assert_manifest_matches_disk()
    assert "Push Gold" not in {e["segment"] for e in manifest["files"]}


def test_an_unknown_platform_or_hashes_beside_a_platform_is_refused_before_writing(
    tmp_path, warehouse
):
    con, program = warehouse
    with pytest.raises(ValueError, match="no ad platform 'bing'"):
        write_segment_exports(con, program, tmp_path, AS_OF, platform="bing")
    with pytest.raises(ValueError, match="hashed-only"):
        write_segment_exports(con, program, tmp_path, AS_OF, hashes=True, platform="meta")
    assert not (tmp_path / "2026-06-30").exists()


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--for", "bing"], "argument --for: invalid choice: 'bing'"),
        (["--for", "meta", "--hashes"], "argument --hashes: not allowed with argument --for"),
    ],
)
def test_bad_export_flags_are_one_line_errors(tmp_path, capsys, extra, expected):
    with pytest.raises(SystemExit) as stopped:
        main(
            ["export", "--segment", "Champions", "--warehouse", str(tmp_path / "w.duckdb"), *extra]
        )
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and err.strip().splitlines()[-1].startswith("omniloyal export: error")


def test_omniloyal_export_for_google_writes_the_file_and_its_manifest(tmp_path, capsys):
    path = tmp_path / "omniloyal.duckdb"
    con = connect(path)
    program_path = build_warehouse(con, tmp_path)
    con.close()
    exports = tmp_path / "exports"
    code = main(
        [
            "export",
            "--segment",
            "champions",
            "--for",
            "google",
            "--warehouse",
            str(path),
            "--exports",
            str(exports),
            "--program",
            str(program_path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "rfm_champions.google.csv  2 customers (marketing consent, hashed for google)" in out
    folder = exports / "2026-06-30"
    assert {p.name for p in folder.iterdir()} == {"rfm_champions.google.csv", "manifest.json"}
    (entry,) = json.loads((folder / "manifest.json").read_text())["files"]
    assert (entry["platform"], entry["hashing"], list(entry["files"])) == (
        "google",
        "only",
        ["csv"],
    )
    assert_no_plain_identifier(read_back(folder / "rfm_champions.google.csv"))


def test_a_campaign_file_holds_its_treated_members_only(tmp_path, warehouse):
    import dataclasses

    from assets.loyalty.program import Campaign

    con, program = warehouse
    spring = Campaign("Spring", date(2026, 3, 1), date(2026, 3, 31), "push", None, None, None,
                      2.0, None, 100, 10, 0.5)  # fmt: skip
    program = dataclasses.replace(program, campaigns=(spring,))
    write_segment_exports(con, program, tmp_path, date(2026, 6, 30), only="Spring", platform="meta")
    rows = read_back(tmp_path / "2026-06-30" / "campaign_spring.meta.csv")
    # C2 has no marketing consent; C5 (consent) is held out: only C1.
    assert list(rows["extern_id"]) == ["C1"]
