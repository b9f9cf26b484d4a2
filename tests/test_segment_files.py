"""Segment export files: consent filtering, the spreadsheet formula guard, the manifest."""

import csv
import hashlib
import json
from datetime import date

import pytest

from assets.segment_files import neutralize_formula, segment_file_name, write_segment_exports
from assets.warehouse import connect


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


def test_exports_hold_only_consented_customers_and_are_formula_safe(tmp_path):
    con = connect(":memory:")
    con.execute(
        """
        create table core.customers as select * from (values
            ('C1', '=HYPERLINK("http://x")', 'a@example.com', '+447911123456', true),
            ('C2', 'Bob', 'b@example.com', null, false),
            ('C3', 'Cy', null, null, true),
            ('C4', 'Di', 'd@example.com', null, true)
        ) t(customer_id, first_name, email, phone_e164, has_email_consent)
        """
    )
    con.execute(
        "create table loyalty.balances as select * from (values ('C1', 'Gold', 10), ('C2', 'Member', 0), "
        "('C3', 'Member', 0), ('C4', 'Silver', 5)) t(customer_id, tier, points_balance)"
    )
    con.execute(
        "create table marts.segments as select * from (values "
        "('C1', 'Champions', 5, 5, 5, 1, 9, 900.0), ('C2', 'Champions', 5, 5, 5, 2, 8, 800.0), "
        "('C3', 'Champions', 5, 5, 5, 3, 7, 700.0), ('C4', 'Lost', 1, 1, 1, 400, 1, 10.0)) "
        "t(customer_id, rfm_segment, r_score, f_score, m_score, recency_days, frequency, monetary)"
    )
    files = write_segment_exports(con, tmp_path, date(2026, 6, 30))
    folder = tmp_path / "2026-06-30"
    with (folder / "champions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    # C2 has no consent, C3 no e-mail: only C1 is in the Champions e-mail audience.
    assert [(r["customer_id"], r["first_name"], r["phone_e164"]) for r in rows] == [
        ("C1", '\'=HYPERLINK("http://x")', "+447911123456")
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [(f["file"], f["rows"]) for f in manifest["files"]] == [("champions.csv", 1), ("lost.csv", 1)]
    assert manifest["files"] == files
    assert files[0]["sha256"] == hashlib.sha256((folder / "champions.csv").read_bytes()).hexdigest()
