"""The run's HTML report: KPIs and charts in one self-contained file.

Written to <reports>/<as-of>.html and copied to <reports>/latest.html. Everything is
read from the warehouse tables (marts.kpis first), charts are inline SVG, and no personal
data appears: only counts, sums and rates. Every KPI figure carries data-kpi,
data-period and data-dimension attributes, so a test (or a reader's script) can check
it against marts.kpis.
"""

from __future__ import annotations

import html
import shutil
from datetime import date
from pathlib import Path

import duckdb

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; } td, th { padding: 0.2rem 0.8rem; text-align: right; }
td:first-child, th:first-child { text-align: left; } tr:nth-child(even) { background: #f6f6f6; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 1.5rem; } svg text { font-size: 11px; }
"""


def _figure(value: float | None, kpi: str, period: str, dimension: str, rate: bool = False) -> str:
    if value is None:
        shown = "-"
    elif rate:
        shown = f"{value:.1%}"
    elif float(value).is_integer():
        shown = f"{value:,.0f}"
    else:
        shown = f"{value:,.2f}"
    return (f'<td data-kpi="{html.escape(kpi)}" data-period="{html.escape(period)}" '
            f'data-dimension="{html.escape(dimension)}" data-value="{value!r}">{shown}</td>')


def bar_chart(title: str, bars: list[tuple[str, float]], width: int = 520) -> str:
    """Horizontal bars, labelled, as inline SVG."""
    height = 22 * len(bars) + 30
    top = max((v for _, v in bars), default=0) or 1
    rows = []
    for i, (label, value) in enumerate(bars):
        y = 25 + 22 * i
        length = (width - 230) * (value / top)
        rows.append(
            f'<text x="0" y="{y + 13}">{html.escape(str(label))}</text>'
            f'<rect x="150" y="{y}" width="{length:.1f}" height="16" fill="#4e79a7"/>'
            f'<text x="{155 + length:.1f}" y="{y + 13}">{value:,.0f}</text>'
        )
    return (f'<figure><svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">'
            f'<text x="0" y="14" font-weight="bold">{html.escape(title)}</text>{"".join(rows)}</svg></figure>')


def column_chart(title: str, series: dict[str, list[tuple[str, float]]], width: int = 520) -> str:
    """Monthly columns, one colour per series, as inline SVG."""
    colours = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"]
    periods = sorted({p for points in series.values() for p, _ in points})
    if not periods:
        return f"<p>{html.escape(title)}: no data</p>"
    top = max((v for points in series.values() for _, v in points), default=0) or 1
    plot_height, slot = 160, (width - 40) / len(periods)
    bar = slot / (len(series) + 1)
    shapes = []
    for s, (name, points) in enumerate(series.items()):
        values = dict(points)
        for i, period in enumerate(periods):
            value = values.get(period, 0)
            h = plot_height * value / top
            shapes.append(f'<rect x="{40 + i * slot + s * bar:.1f}" y="{20 + plot_height - h:.1f}" width="{bar:.1f}" '
                          f'height="{h:.1f}" fill="{colours[s % len(colours)]}"><title>{html.escape(name)} {period}: '
                          f'{value:,.0f}</title></rect>')
        shapes.append(f'<text x="{40 + s * 140}" y="{plot_height + 50}" fill="{colours[s % len(colours)]}">'
                      f'{html.escape(name)}</text>')
    shapes.append(f'<text x="40" y="{plot_height + 34}">{periods[0]}</text>'
                  f'<text x="{width - 60}" y="{plot_height + 34}">{periods[-1]}</text>')
    return (f'<figure><svg width="{width}" height="{plot_height + 60}" role="img" aria-label="{html.escape(title)}">'
            f'<text x="0" y="12" font-weight="bold">{html.escape(title)} (max {top:,.0f})</text>{"".join(shapes)}'
            f'</svg></figure>')


def write_report(con: duckdb.DuckDBPyConnection, reports_dir: Path, as_of: date) -> Path:
    """Write <reports>/<as-of>.html and latest.html; returns the dated file."""

    def kpi_rows(kpi: str, period: str = "as_of") -> list[tuple[str, float]]:
        return con.execute(
            "select dimension, value from marts.kpis where kpi = ? and period = ? order by dimension", [kpi, period]
        ).fetchall()

    def monthly(kpi: str, dimension: str | None = None) -> list[tuple[str, float]]:
        sql = "select period, sum(value) from marts.kpis where kpi = ? and period <> 'as_of'"
        sql += " and dimension = ?" if dimension else ""
        return con.execute(sql + " group by period order by period", [kpi, *([dimension] if dimension else [])]).fetchall()

    snapshot = con.execute(
        "select kpi, dimension, value from marts.kpis where period = 'as_of' order by kpi, dimension"
    ).fetchall()
    rates = {"identity_match_rate", "retention_rate_90d", "repeat_purchase_rate", "redemption_rate",
             "breakage_rate", "omnichannel_share"}
    kpi_table = "".join(
        f"<tr><td>{html.escape(kpi)}</td><td>{html.escape(dimension)}</td>{_figure(value, kpi, 'as_of', dimension, kpi in rates)}</tr>"
        for kpi, dimension, value in snapshot
    )
    tier_order = dict(con.execute("select tier, tier_rank from loyalty.program_tiers").fetchall())
    tiers = sorted(kpi_rows("members_per_tier"), key=lambda row: tier_order.get(row[0], 0))
    rfm_grid = con.execute(
        "select r_score, cast(round((f_score + m_score) / 2, 0) as integer) as fm, count(*) from marts.segments "
        "where r_score is not null group by all"
    ).fetchall()
    grid = {(r, fm): n for r, fm, n in rfm_grid}
    grid_html = "<table><tr><th>R \\ FM</th>" + "".join(f"<th>{fm}</th>" for fm in range(1, 6)) + "</tr>" + "".join(
        f"<tr><td>{r}</td>" + "".join(f"<td>{grid.get((r, fm), 0):,}</td>" for fm in range(1, 6)) + "</tr>"
        for r in range(5, 0, -1)
    ) + "</table>"
    quality = con.execute(
        "select source, sum(rows_read), sum(rows_loaded), sum(rows_quarantined) from quality.source_summary group by 1 order by 1"
    ).fetchall()
    quality_html = "<table><tr><th>source</th><th>rows read</th><th>loaded</th><th>quarantined</th></tr>" + "".join(
        f"<tr><td>{html.escape(s)}</td><td>{r:,}</td><td>{lo:,}</td><td>{q:,}</td></tr>" for s, r, lo, q in quality
    ) + "</table>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>omniloyal report {as_of.isoformat()}</title>
<style>{STYLE}</style></head><body>
<h1>omniloyal report</h1><p>As of {as_of.isoformat()}. Counts and rates only; no personal data.</p>
<h2>Members and tiers</h2><div class="grid">
{bar_chart("Tier funnel: members per tier", tiers)}
{bar_chart("Customers per RFM segment", kpi_rows("customers_per_rfm_segment"))}
{bar_chart("Customers per lifecycle stage", kpi_rows("customers_per_lifecycle_stage"))}
{bar_chart("Customers per channel mix", kpi_rows("customers_per_channel_mix"))}
</div>
<h2>RFM grid (customers by recency score and frequency-monetary score)</h2>{grid_html}
<h2>Activity</h2><div class="grid">
{column_chart("Monthly active members", {"active members": monthly("active_members")})}
{column_chart("Monthly revenue", {"revenue": monthly("revenue")})}
{column_chart("Points per month", {"issued": monthly("points_issued"), "redeemed": monthly("points_redeemed"),
                                   "expired": monthly("points_expired")})}
</div>
<h2>Identity resolution</h2><div class="grid">
{bar_chart("Customer records per source", kpi_rows("customer_records"))}
{bar_chart("Match rate per source (% of records joined to another source)",
           [(d, 100 * v) for d, v in kpi_rows("identity_match_rate")])}
</div>
<h2>Data quality</h2>{quality_html}
<h2>All KPIs as of {as_of.isoformat()}</h2>
<table><tr><th>kpi</th><th>dimension</th><th>value</th></tr>{kpi_table}</table>
</body></html>
"""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{as_of.isoformat()}.html"
    path.write_text(page, encoding="utf-8")
    shutil.copyfile(path, reports_dir / "latest.html")
    return path
