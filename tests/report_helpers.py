"""Shared by the report's tests: a small hand-made warehouse whose every figure is worked out
below, and the headless-browser check (chromium renders the report; each chart must show).

Imported as `report_helpers`: pytest puts tests/ (conftest.py's folder) on sys.path.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pytest

from assets.loyalty.program import load_program, write_program_tables
from assets.marts.kpi_history import record_kpi_history
from assets.shared.warehouse import connect, set_variable

# A partial month: June 2026 has 30 days.
AS_OF = date(2026, 6, 15)
PREVIOUS_AS_OF = date(2026, 6, 14)

# Snapshot KPIs (period 'as_of'): kpi, dimension, value, unit.
SNAPSHOT = [
    ("members", "all", 5.0, "count"),
    ("active_members_30d", "all", 2.0, "count"),
    ("retention_rate_90d", "all", 0.5, "rate"),
    ("average_order_value_12m", "all", 41.2, "currency"),
    ("points_outstanding", "all", 1000.0, "points"),
    ("points_liability", "all", 10.0, "currency"),
    ("redemption_rate", "all", 0.1, "rate"),
    ("breakage_rate", "all", 0.25, "rate"),
    ("breakage_estimate", "all", 0.4, "rate"),
    ("deferred_revenue", "all", 6.0, "currency"),  # 10.00 x (1 - 0.4)
    ("some_new_share", "all", 0.5, "rate"),  # a KPI the report has no text for
    ("average_spend", "omnichannel", 12.5, "currency"),
    ("identity_match_rate", "web", 0.25, "rate"),
    ("identity_match_rate", "app", 1.0, "rate"),
    ("customer_records", "web", 4.0, "count"),
    ("customer_records", "app", 2.0, "count"),
    ("members_per_tier", "Gold", 1.0, "count"),
    ("members_per_tier", "Member", 4.0, "count"),
    ("customers_per_lifecycle_stage", "active", 1.0, "count"),
    ("customers_per_lifecycle_stage", "at risk", 1.0, "count"),
    ("customers_per_lifecycle_stage", "churned", 1.0, "count"),
    ("customers_per_lifecycle_stage", "new", 1.0, "count"),
    ("customers_per_lifecycle_stage", "prospect", 1.0, "count"),
    ("customers_per_channel_mix", "<script>alert(1)</script>", 1.0, "count"),
    ("customers_per_channel_mix", "web-only", 3.0, "count"),
]
# The previous run's figures that differ: members 4 -> 5, retention 40% -> 50%, AOV 43.70 -> 41.20.
PREVIOUS = {"members": 4.0, "retention_rate_90d": 0.4, "average_order_value_12m": 43.7}

# Monthly KPIs: kpi, period, dimension, value, unit. April is the first month with data.
MONTHLY = [
    ("active_members", "2026-04", "all", 1.0, "count"),
    ("active_members", "2026-05", "all", 2.0, "count"),
    ("active_members", "2026-06", "all", 1.0, "count"),
    ("revenue", "2026-05", "web", 10.0, "currency"),
    ("revenue", "2026-05", "store", 5.0, "currency"),
    ("revenue", "2026-06", "web", 7.0, "currency"),
    ("points_issued", "2026-04", "earn", 100.0, "points"),
    ("points_issued", "2026-05", "earn", 200.0, "points"),
    ("points_issued", "2026-05", "bonus", 50.0, "points"),
    ("points_redeemed", "2026-05", "all", 30.0, "points"),
    ("points_expired", "2026-06", "all", 20.0, "points"),
    ("points_liability", "2026-05", "all", 8.0, "currency"),
    ("points_liability", "2026-06", "all", 10.0, "currency"),
    ("deferred_revenue", "2026-05", "all", 8.0, "currency"),  # no estimate yet: all of it
    ("deferred_revenue", "2026-06", "all", 6.0, "currency"),
    ("breakage_estimate", "2026-06", "all", 0.4, "rate"),
]

# customer, r_score, fm_score, rfm_segment, historical_value, lifecycle stage, e-mail?, e-mail consent, push consent
CUSTOMERS = [
    ("c1", 5, 4, "Champions", 500, "active", True, True, True),
    ("c2", 5, 4, "Champions", 300, "new", False, True, False),  # consented, but no e-mail
    ("c3", 1, 1, "Lost", 600, "churned", True, False, True),
    ("c4", None, None, "Prospect", 0, "prospect", True, True, False),
    ("c5", 1, 5, "Can't Lose Them", 1000, "at risk", True, False, False),
]
# customer: tier, points balance, points expiring in 30 days; and its source records
BALANCES = {
    "c1": ("Gold", 600, 100),
    "c2": ("Member", 300, 0),
    "c3": ("Member", 100, 50),
    "c4": ("Member", 0, 0),
    "c5": ("Member", 0, 0),
}
RECORDS = {
    "c1": ["web", "app", "store"],
    "c2": ["web"],
    "c3": ["web", "app"],
    "c4": ["web"],
    "c5": ["store"],
}


def write_kpis(con: duckdb.DuckDBPyConnection, snapshot: list[tuple], monthly: list[tuple]) -> None:
    con.execute(
        "create or replace table marts.kpis (kpi varchar, period varchar, dimension varchar, value double, unit varchar)"
    )
    con.executemany(
        "insert into marts.kpis values (?, 'as_of', ?, ?, ?)",
        [list(row) for row in snapshot],
    )
    con.executemany("insert into marts.kpis values (?, ?, ?, ?, ?)", [list(row) for row in monthly])


def hand_made_warehouse() -> duckdb.DuckDBPyConnection:
    """Every table the report reads, and a KPI history of two runs: PREVIOUS_AS_OF, then AS_OF."""
    con = connect(":memory:", {"as_of": PREVIOUS_AS_OF})
    write_program_tables(
        con, load_program()
    )  # GBP, 1 point = 0.01, the bundled tiers and RFM rules
    earlier = [(k, d, PREVIOUS.get(k, v), u) for k, d, v, u in SNAPSHOT]
    write_kpis(con, earlier, MONTHLY)
    record_kpi_history(con)
    set_variable(con, "as_of", AS_OF)
    write_kpis(con, SNAPSHOT, MONTHLY)
    record_kpi_history(con)

    con.execute(
        "create table marts.segments (customer_id varchar, r_score integer, fm_score integer, "
        "rfm_segment varchar, historical_value decimal(18, 2), lifecycle_stage varchar)"
    )
    con.execute(
        "create table core.customers (customer_id varchar, email varchar, has_email_consent boolean, has_push_consent boolean)"
    )
    con.execute(
        "create table marts.segment_memberships (customer_id varchar, segmentation varchar, segment varchar)"
    )
    # One finished campaign (tests/test_campaigns.py reads it back from the page).
    con.execute(
        "create table marts.campaign_results as select 'Spring Double' as campaign, 'email' as channel, "
        "date '2026-03-01' as starts_on, date '2026-03-31' as ends_on, true as is_finished, "
        "800::bigint as treated_members, 200::bigint as holdout_members, 41.67 as treated_spend_per_member, "
        "23.33 as holdout_spend_per_member, 18.34 as uplift_spend_per_member, -32.8 as uplift_ci_low, "
        "69.46 as uplift_ci_high, 12500::bigint as points_issued, 20000::bigint as budget_points, "
        "0.0085 as cost_per_incremental_revenue"
    )
    for customer, r, fm, segment, spend, stage, has_email, email_ok, push_ok in CUSTOMERS:
        con.execute(
            "insert into marts.segments values (?, ?, ?, ?, ?, ?)",
            [customer, r, fm, segment, spend, stage],
        )
        con.execute(
            "insert into core.customers values (?, ?, ?, ?)",
            [customer, f"{customer}@example.com" if has_email else None, email_ok, push_ok],
        )
        con.execute(
            "insert into marts.segment_memberships values (?, 'rfm', ?)", [customer, segment]
        )
        con.execute(
            "insert into marts.segment_memberships values (?, 'lifecycle', ?)", [customer, stage]
        )
    con.execute("insert into marts.segment_memberships values ('c1', 'custom', 'VIPs')")
    con.execute(
        "insert into marts.segment_memberships values ('c1', 'value', 'Top')"
    )  # not exported: not shown

    con.execute(
        "create table loyalty.balances (customer_id varchar, tier varchar, points_balance bigint, "
        "points_expiring_next_30_days bigint)"
    )
    for customer, (tier, balance, expiring) in BALANCES.items():
        con.execute(
            "insert into loyalty.balances values (?, ?, ?, ?)", [customer, tier, balance, expiring]
        )
    con.execute(
        "create table identity.source_records (source varchar, source_record_id varchar, customer_id varchar)"
    )
    for customer, sources in RECORDS.items():
        for source in sources:
            con.execute(
                "insert into identity.source_records values (?, ?, ?)",
                [source, f"{source}-{customer}", customer],
            )

    con.execute(
        "create table quality.source_summary as select * from (values ('web', 10, 9, 1), ('app', 5, 3, 2)) "
        "t(source, rows_read, rows_loaded, rows_quarantined)"
    )
    con.execute(
        "create table quality.quarantine as select * from (values "
        "('web', 'amount is negative; missing required order_id'), "
        "('app', 'malformed JSON line'), ('app', 'malformed JSON line')) t(source, reason)"
    )
    con.execute(
        "create table quality.field_issues as select * from (values "
        "('web', 'birth_date is not a date as %Y-%m-%d')) t(source, reason)"
    )
    return con


# --- the browser -----------------------------------------------------------------------

# Every chart the report draws (data-chart of its <svg>).
CHARTS = {
    "active_members",
    "revenue",
    "points",
    "redemption_breakage",
    "liability",
    "tiers",
    "lifecycle",
    "channel_mix",
    "rfm_heat",
    "rfm_segments",
    "match_rates",
    "records_per_customer",
    "records_per_source",
}
WINDOW = (1400, 5000)  # taller with the campaigns table and the liability chart (issue 17)
OUTPUT = Path(__file__).resolve().parents[1] / "test-output"

# Added to a copy of the report for --dump-dom: measures, in the rendered page, where each
# chart is and how many of its marks (bars, cells, lines, points) have a size. The report
# itself has no script.
MEASURE = """<script>
const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll('.mark')].map(m => m.getBBox());
  return {id: svg.dataset.chart, left: box.left + scrollX, top: box.top + scrollY,
          width: box.width, height: box.height, marks: marks.length,
          drawn: marks.filter(b => b.width > 0 && b.height > 0).length};
});
const out = document.createElement('pre');
out.id = 'measured';
out.textContent = JSON.stringify({charts, height: document.documentElement.scrollHeight});
document.body.appendChild(out);
</script>"""


def chromium() -> str:
    """The browser; the test fails (not skips) without it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(
            "chromium is not installed: install it (apt-get install chromium) to test the report in a browser",
            pytrace=False,
        )
    return found


def _run_chromium(profile: Path, *args: str) -> str:
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",  # its own profile: tests in parallel do not share one
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def read_png(path: Path) -> np.ndarray:
    """An 8-bit RGB or RGBA PNG as a height x width x channels array (what chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, "unexpected PNG format"
        elif kind == b"IDAT":
            idat.append(body)
    channels = 3 if colour == 2 else 4
    stride = width * channels
    rows = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, stride + 1)
    image = np.zeros((height, stride), np.uint8)
    above = np.zeros(stride, np.int64)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].astype(np.int64)
        if kind == 0:  # none
            row = line
        elif kind == 1:  # sub: each byte adds the one a pixel to its left
            row = np.cumsum(line.reshape(width, channels), axis=0).reshape(-1) % 256
        elif kind == 2:  # up
            row = (line + above) % 256
        else:  # average or Paeth: depend on the reconstructed left byte, one at a time
            left_values = bytearray(stride)
            up, raw = above.tolist(), line.tolist()
            for i in range(stride):
                a = left_values[i - channels] if i >= channels else 0
                b = up[i]
                if kind == 3:
                    predicted = (a + b) >> 1
                else:
                    c = up[i - channels] if i >= channels else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    predicted = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                left_values[i] = (raw[i] + predicted) & 255
            row = np.frombuffer(bytes(left_values), np.uint8).astype(np.int64)
        image[y] = row
        above = row
    return image.reshape(height, width, channels)[:, :, :3]


def render_in_chromium(report: Path, work: Path, keep_as: str) -> tuple[dict, np.ndarray, Path]:
    """Screenshot the report and measure its charts in chromium; the screenshot is kept in
    `work` and copied to test-output/<keep_as>. Returns (measures, pixels, screenshot)."""
    work.mkdir(parents=True, exist_ok=True)
    screenshot = work / "report.png"
    _run_chromium(work / "profile", f"--screenshot={screenshot}", report.resolve().as_uri())
    OUTPUT.mkdir(exist_ok=True)
    shutil.copyfile(screenshot, OUTPUT / keep_as)
    measured_copy = work / "measured.html"
    page = report.read_text(encoding="utf-8")
    measured_copy.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _run_chromium(work / "profile", "--dump-dom", measured_copy.resolve().as_uri())
    start = dom.index('<pre id="measured">') + len('<pre id="measured">')
    measures = json.loads(
        dom[start : dom.index("</pre>", start)].replace("&quot;", '"').replace("&amp;", "&")
    )
    return measures, read_png(screenshot), screenshot


def assert_every_chart_shows(measures: dict, pixels: np.ndarray) -> None:
    """Every chart is in the page, has marks with a size, fits in the screenshot, and its
    area of the screenshot holds coloured pixels (not a blank or grey box)."""
    charts = {chart["id"]: chart for chart in measures["charts"]}
    assert set(charts) == CHARTS
    height, width, _ = pixels.shape
    assert (width, height) == WINDOW
    assert measures["height"] <= height, "the report no longer fits the screenshot"
    for name, chart in charts.items():
        assert chart["width"] > 100 and chart["height"] > 60, name
        assert chart["marks"] > 0 and chart["drawn"] > 0, (name, chart)
        top, left = int(chart["top"]), int(chart["left"])
        area = pixels[top : top + int(chart["height"]), left : left + int(chart["width"])].astype(
            int
        )
        saturation = area.max(axis=2) - area.min(axis=2)
        assert (saturation > 60).sum() > 150, f"{name}: no coloured marks in the screenshot"
