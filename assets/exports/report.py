"""The run's HTML report: KPIs and charts in one self-contained file.

Written to <reports>/<as-of>.html and copied to <reports>/latest.html. Everything is
read from the warehouse tables (marts.kpis first), charts are inline SVG, and no personal
data appears: only counts, sums and rates. Every KPI figure carries data-kpi,
data-period and data-dimension attributes, so a test (or a reader's script) can check
it against marts.kpis.

This module queries the warehouse and shapes the figures (chart geometry included); the
page itself is templates/report.html.j2, rendered with autoescaping on. What a KPI
measures (a rate shown as a percentage, a count...) is marts.kpis.unit, defined with the
KPIs in assets/marts/sql/kpis.sql; the RFM grid's fm axis is marts.segments.fm_score.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import jinja2

TEMPLATES = Path(__file__).parent / "templates"
CHART_WIDTH = 520
SERIES_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"]
SCORES = range(1, 6)


def whole(value: float) -> str:
    """A count, sum or chart value: thousands separators, no decimals."""
    return f"{value:,.0f}"


def shown(value: float | None, unit: str) -> str:
    """A KPI figure as the report shows it: rates as percentages, others as numbers."""
    if value is None:
        return "-"
    if unit == "rate":
        return f"{value:.1%}"
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["whole"] = whole
    return env


def bar_chart(
    title: str, bars: list[tuple[str, float]], width: int = CHART_WIDTH
) -> dict[str, Any]:
    """Horizontal bars, labelled: their geometry for the template's bar_chart."""
    top = max((v for _, v in bars), default=0) or 1
    return {
        "title": title,
        "width": width,
        "height": 22 * len(bars) + 30,
        "bars": [
            {
                "label": str(label),
                "value": value,
                "y": 25 + 22 * i,
                "length": (width - 230) * (value / top),
            }
            for i, (label, value) in enumerate(bars)
        ],
    }


def column_chart(
    title: str, series: dict[str, list[tuple[str, float]]], width: int = CHART_WIDTH
) -> dict[str, Any]:
    """Monthly columns, one colour per series: their geometry for the template's column_chart."""
    periods = sorted({p for points in series.values() for p, _ in points})
    top = max((v for points in series.values() for _, v in points), default=0) or 1
    plot_height = 160
    slot = (width - 40) / max(len(periods), 1)
    bar = slot / (len(series) + 1)
    shaped = []
    for s, (name, points) in enumerate(series.items()):
        values = dict(points)
        columns = []
        for i, period in enumerate(periods):
            value = values.get(period, 0)
            height = plot_height * value / top
            columns.append(
                {
                    "period": period,
                    "value": value,
                    "x": 40 + i * slot + s * bar,
                    "y": 20 + plot_height - height,
                    "height": height,
                }
            )
        shaped.append(
            {"name": name, "colour": SERIES_COLOURS[s % len(SERIES_COLOURS)], "columns": columns}
        )
    return {
        "title": title,
        "width": width,
        "plot_height": plot_height,
        "periods": periods,
        "top": top,
        "bar": bar,
        "series": shaped,
    }


def _as_percent(rows: list[tuple[str, float, str]]) -> list[tuple[str, float]]:
    """Chart bars of a KPI's rows: rates (marts.kpis.unit) in percent, other units as they are."""
    return [
        (dimension, 100 * value if unit == "rate" else value) for dimension, value, unit in rows
    ]


def report_data(con: duckdb.DuckDBPyConnection, as_of: date) -> dict[str, Any]:
    """Everything the template shows, read from the warehouse."""
    snapshot = con.execute(
        "select kpi, dimension, value, unit from marts.kpis where period = 'as_of' order by kpi, dimension"
    ).fetchall()
    by_kpi: dict[str, list[tuple[str, float, str]]] = defaultdict(list)
    for kpi, dimension, value, unit in snapshot:
        by_kpi[kpi].append((dimension, value, unit))

    def bars(kpi: str) -> list[tuple[str, float]]:
        return [(dimension, value) for dimension, value, _ in by_kpi[kpi]]

    # The tier funnel in the programme's tier order; a tier no longer in the programme first.
    tiers = con.execute(
        "select kpis.dimension, kpis.value from marts.kpis "
        "left join loyalty.program_tiers on program_tiers.tier = kpis.dimension "
        "where kpis.kpi = 'members_per_tier' and kpis.period = 'as_of' "
        "order by coalesce(program_tiers.tier_rank, 0), kpis.dimension"
    ).fetchall()
    monthly: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for kpi, period, value in con.execute(
        "select kpi, period, sum(value) from marts.kpis "
        "where period <> 'as_of' and kpi in ('active_members', 'revenue', 'points_issued', 'points_redeemed', "
        "'points_expired') group by kpi, period order by kpi, period"
    ).fetchall():
        monthly[kpi].append((period, value))
    # Every (recency, frequency-monetary) cell, empty ones as 0.
    grid = con.execute(
        "select r.score, fm.score, count(segments.customer_id) "
        "from range(1, 6) as r(score) cross join range(1, 6) as fm(score) "
        "left join marts.segments on segments.r_score = r.score and segments.fm_score = fm.score "
        "group by all order by r.score desc, fm.score"
    ).fetchall()
    grid_rows: dict[int, list[int]] = defaultdict(list)
    for r_score, _, customers in grid:
        grid_rows[r_score].append(customers)
    quality = con.execute(
        "select source, sum(rows_read), sum(rows_loaded), sum(rows_quarantined) "
        "from quality.source_summary group by source order by source"
    ).fetchall()
    return {
        "as_of": as_of.isoformat(),
        "charts": {
            "tiers": bar_chart("Tier funnel: members per tier", tiers),
            "rfm_segments": bar_chart(
                "Customers per RFM segment", bars("customers_per_rfm_segment")
            ),
            "lifecycle_stages": bar_chart(
                "Customers per lifecycle stage", bars("customers_per_lifecycle_stage")
            ),
            "channel_mix": bar_chart(
                "Customers per channel mix", bars("customers_per_channel_mix")
            ),
            "active_members": column_chart(
                "Monthly active members", {"active members": monthly["active_members"]}
            ),
            "revenue": column_chart("Monthly revenue", {"revenue": monthly["revenue"]}),
            "points": column_chart(
                "Points per month",
                {
                    "issued": monthly["points_issued"],
                    "redeemed": monthly["points_redeemed"],
                    "expired": monthly["points_expired"],
                },
            ),
            "customer_records": bar_chart("Customer records per source", bars("customer_records")),
            "match_rates": bar_chart(
                "Match rate per source (% of records joined to another source)",
                _as_percent(by_kpi["identity_match_rate"]),
            ),
        },
        "rfm_grid": {
            "fm_scores": list(SCORES),
            "rows": [
                {"r_score": r, "customers": grid_rows[r]} for r in sorted(grid_rows, reverse=True)
            ],
        },
        "quality": [
            {"source": s, "rows_read": read, "rows_loaded": loaded, "rows_quarantined": quarantined}
            for s, read, loaded, quarantined in quality
        ],
        "kpis": [
            {
                "kpi": kpi,
                "dimension": dimension,
                "value_repr": repr(value),
                "shown": shown(value, unit),
            }
            for kpi, dimension, value, unit in snapshot
        ],
    }


def render_report(con: duckdb.DuckDBPyConnection, as_of: date) -> str:
    """The report's HTML."""
    return _environment().get_template("report.html.j2").render(report_data(con, as_of))


def write_report(con: duckdb.DuckDBPyConnection, reports_dir: Path, as_of: date) -> Path:
    """Write <reports>/<as-of>.html, and latest.html unless a later date has a report; returns
    the dated file."""
    page = render_report(con, as_of)
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{as_of.isoformat()}.html"
    path.write_text(page, encoding="utf-8")
    # latest.html is the newest as-of date's report: a run for a past date does not replace it.
    dated = [p.stem for p in reports_dir.glob("????-??-??.html")]
    if as_of.isoformat() >= max(dated):
        shutil.copyfile(path, reports_dir / "latest.html")
    return path
