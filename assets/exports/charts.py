"""Chart geometry for the run's report: axes with round ticks, monthly columns and lines,
horizontal bars and the RFM heat map.

Plain functions that turn figures into positions, sizes and labels; the template
(templates/report.html.j2) only draws them as inline SVG, so the report needs no script,
no library and no network to render. Every chart has one unit, named on its axis, and
every monthly chart takes the same list of months (report.py chooses it), so they line up.
"""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass, field
from datetime import date

# Colours that stay apart for colour-blind readers (Tableau 10), and what each means.
BLUE, ORANGE, RED, TEAL, GREEN, GREY = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#9a9a9a",
)
SERIES_COLOURS = [BLUE, ORANGE, GREEN, RED, TEAL, GREY]
# The heat map goes from a pale to a dark blue with the count.
HEAT_LOW, HEAT_HIGH = (235, 241, 248), (31, 78, 121)

FULL_WIDTH, HALF_WIDTH, THIRD_WIDTH = 1300, 640, 420
PLOT_HEIGHT = 150
LEFT_MARGIN, TOP_MARGIN = 64, 44  # room for the y labels; for the title and the unit
RIGHT_MARGIN = 48  # room for a line's last value
WHOLE_KINDS = ("count", "points")  # values that come in whole units: no tick at 0.5


# --- axes ------------------------------------------------------------------------------


def nice_ticks(top: float, count: int = 5, whole: bool = False) -> list[float]:
    """Axis ticks from 0 up to at least `top`, about `count` steps of 1, 2, 2.5 or 5 times a
    power of ten: nice_ticks(1715) is [0, 500, 1000, 1500, 2000]. With `whole` (counts of
    customers, points) no step is below 1 and none is 2.5."""
    if not top or top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    rough = max(top / count, 1) if whole else top / count
    magnitude = 10 ** math.floor(math.log10(rough))
    multiples = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in multiples if m * magnitude >= rough * (1 - 1e-9))
    steps = math.ceil(top / step - 1e-9)
    # Rounded so that 3 x 0.1 is 0.3, not 0.30000000000000004.
    return [round(i * step, 10) for i in range(steps + 1)]


def currency_symbol(currency: str) -> str:
    """'GBP' -> '£'; a code without a common symbol is written before the amount ('CHF ')."""
    return {"GBP": "£", "EUR": "€", "USD": "$", "JPY": "¥"}.get(
        currency, f"{currency} " if currency else ""
    )


def tick_label(value: float, kind: str, currency: str = "", top: float | None = None) -> str:
    """An axis label: 2500 -> '2,500', 125000 -> '125k', 2500000 -> '2.5M'; percent for 'percent'
    (values already in percent) and the currency's symbol for 'currency'. `top`, the axis'
    last tick, picks the style for the whole axis (7,500 beside 10,000 is '7.5k')."""
    if kind == "percent":
        return f"{value:g}%"
    size = abs(value if top is None else top)
    if value == 0:
        text = "0"
    elif size >= 1e6:
        text = f"{value / 1e6:g}M"
    elif size >= 1e4:
        text = f"{value / 1e3:g}k"
    elif value == int(value):
        text = f"{value:,.0f}"
    else:
        text = f"{value:g}"
    return f"{currency_symbol(currency)}{text}" if kind == "currency" else text


# --- months ----------------------------------------------------------------------------


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def is_partial_month(as_of: date) -> bool:
    """The as-of date's month is partial unless the as-of date is its last day."""
    return as_of.day < calendar.monthrange(as_of.year, as_of.month)[1]


def report_months(as_of: date, first_with_data: str | None, most: int = 24) -> list[str]:
    """The months every monthly chart shows: up to `most` months ending with the as-of date's
    month, starting no earlier than the first month with data; 'YYYY-MM', oldest first."""
    end = as_of.year * 12 + as_of.month - 1
    start = end - most + 1
    if first_with_data:
        year, month = (int(part) for part in first_with_data.split("-"))
        start = max(start, min(year * 12 + month - 1, end))
    return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in range(start, end + 1)]


def month_label(month: str) -> str:
    """'2026-01' -> 'Jan 2026': how months are named in the report's text."""
    year, number = month.split("-")
    return f"{calendar.month_abbr[int(number)]} {year}"


# --- monthly charts --------------------------------------------------------------------


@dataclass
class Series:
    name: str
    colour: str
    values: dict[str, float]  # month -> value; a month missing is 0 (or a gap for lines)


@dataclass
class Axis:
    """A y axis: its ticks (value label and height) and what the values are."""

    unit: str
    ticks: list[dict] = field(default_factory=list)


def _y_axis(
    top: float, kind: str, unit: str, currency: str, plot_top: int, height: int
) -> tuple[Axis, float]:
    ticks = nice_ticks(top, whole=kind in WHOLE_KINDS)
    scale = height / ticks[-1]
    axis = Axis(
        unit=unit,
        ticks=[
            {"y": plot_top + height - t * scale, "label": tick_label(t, kind, currency, ticks[-1])}
            for t in ticks
        ],
    )
    return axis, scale


def _x_axis(months: list[str], left: float, slot: float, baseline: float) -> list[dict]:
    """One label per month ('Jan'), the year under every January and under the first month
    unless a January follows within two months (the two years would run into each other)."""
    labels = []
    for i, month in enumerate(months):
        year, number = month.split("-")
        first_shows_year = i == 0 and int(number) <= 10
        labels.append(
            {
                "x": left + (i + 0.5) * slot,
                "y": baseline + 14,
                "month": calendar.month_abbr[int(number)],
                "year": year if first_shows_year or number == "01" else "",
            }
        )
    return labels


def monthly_chart(
    chart_id: str,
    title: str,
    months: list[str],
    series: list[Series],
    *,
    kind: str,
    unit: str,
    partial_month: str | None,
    currency: str = "",
    stacked: bool = False,
    width: int = FULL_WIDTH,
) -> dict:
    """Columns per month: one per series side by side, or stacked. `kind` is count, points,
    currency or percent (for the tick labels); `unit` names the y axis ('members', 'GBP').
    The partial month's columns are drawn hatched and its slot shaded (the template)."""
    plot_left, plot_top, height = LEFT_MARGIN, TOP_MARGIN, PLOT_HEIGHT
    plot_width = width - plot_left - RIGHT_MARGIN
    slot = plot_width / max(len(months), 1)
    if stacked:
        top = max((sum(s.values.get(m, 0) for s in series) for m in months), default=0)
    else:
        top = max((s.values.get(m, 0) for s in series for m in months), default=0)
    axis, scale = _y_axis(top, kind, unit, currency, plot_top, height)
    baseline = plot_top + height
    group = slot * 0.8  # 20% of a slot between months
    bar = group if stacked else group / max(len(series), 1)
    columns = []
    for i, month in enumerate(months):
        stack = 0.0
        for s_index, s in enumerate(series):
            value = s.values.get(month, 0) or 0
            bar_height = value * scale
            x = plot_left + i * slot + (slot - group) / 2 + (0 if stacked else s_index * bar)
            y = baseline - stack - bar_height
            columns.append(
                {
                    "x": x,
                    "y": y,
                    "width": bar,
                    "height": bar_height,
                    "series": s_index,
                    "colour": s.colour,
                    "partial": month == partial_month,
                    "tip": f"{s.name}, {month_label(month)}: {tick_label(value, kind, currency) if kind == 'percent' else _exact(value, kind, currency)}",
                }
            )
            if stacked:
                stack += bar_height
    partial_index = months.index(partial_month) if partial_month in months else None
    return {
        "type": "columns",
        "id": chart_id,
        "title": title,
        "width": width,
        "height": baseline + 36,
        "plot": {"left": plot_left, "top": plot_top, "width": plot_width, "height": height},
        "axis": axis,
        "x_labels": _x_axis(months, plot_left, slot, baseline),
        "columns": columns,
        "legend": [{"name": s.name, "colour": s.colour} for s in series] if len(series) > 1 else [],
        "partial": None
        if partial_index is None
        else {"x": plot_left + partial_index * slot, "width": slot},
    }


def line_chart(
    chart_id: str,
    title: str,
    months: list[str],
    series: list[Series],
    *,
    unit: str,
    partial_month: str | None,
    width: int = FULL_WIDTH,
) -> dict:
    """Lines of percentages per month (values in percent); a month without a value breaks the line."""
    plot_left, plot_top, height = LEFT_MARGIN, TOP_MARGIN, PLOT_HEIGHT
    plot_width = width - plot_left - RIGHT_MARGIN
    slot = plot_width / max(len(months), 1)
    top = max(
        (v for s in series for m, v in s.values.items() if m in months and v is not None), default=0
    )
    axis, scale = _y_axis(top, "percent", unit, "", plot_top, height)
    baseline = plot_top + height
    lines = []
    for s_index, s in enumerate(series):
        points = [
            {
                "x": plot_left + (i + 0.5) * slot,
                "y": baseline - s.values[month] * scale,
                "tip": f"{s.name}, {month_label(month)}: {s.values[month]:.1f}%",
                "partial": month == partial_month,
            }
            for i, month in enumerate(months)
            if s.values.get(month) is not None
        ]
        lines.append(
            {
                "name": s.name,
                "colour": s.colour,
                "points": points,
                "path": " ".join(
                    f"{'M' if i == 0 else 'L'}{p['x']:.1f},{p['y']:.1f}"
                    for i, p in enumerate(points)
                ),
                "series": s_index,
            }
        )
    partial_index = months.index(partial_month) if partial_month in months else None
    return {
        "type": "lines",
        "id": chart_id,
        "title": title,
        "width": width,
        "height": baseline + 36,
        "plot": {"left": plot_left, "top": plot_top, "width": plot_width, "height": height},
        "axis": axis,
        "x_labels": _x_axis(months, plot_left, slot, baseline),
        "lines": lines,
        "legend": [{"name": s.name, "colour": s.colour} for s in series],
        "partial": None
        if partial_index is None
        else {"x": plot_left + partial_index * slot, "width": slot},
    }


def _exact(value: float, kind: str, currency: str) -> str:
    """A value in a tooltip: whole numbers with separators, money with its symbol."""
    text = f"{value:,.0f}"
    return f"{currency_symbol(currency)}{text}" if kind == "currency" else text


# --- horizontal bars -------------------------------------------------------------------


def bar_chart(
    chart_id: str,
    title: str,
    bars: list[tuple[str, float, str]],
    *,
    kind: str,
    unit: str,
    currency: str = "",
    colour: str = BLUE,
    width: int = THIRD_WIDTH,
    label_width: int = 120,
    value_width: int = 70,
) -> dict:
    """Horizontal bars in the order given: (label, value, text shown at the bar's end). The x
    axis has round ticks, gridlines and `unit` under it; `value_width` is the room kept for
    the text at the end of the longest bar."""
    row = 24
    plot_left, plot_top = label_width, 28
    plot_width = width - plot_left - value_width
    top = max((value for _, value, _ in bars), default=0)
    ticks = nice_ticks(top, count=4, whole=kind in WHOLE_KINDS)
    scale = plot_width / ticks[-1]
    plot_height = row * max(len(bars), 1)
    return {
        "type": "bars",
        "id": chart_id,
        "title": title,
        "width": width,
        "height": plot_top + plot_height + 36,
        "plot": {"left": plot_left, "top": plot_top, "width": plot_width, "height": plot_height},
        "unit": unit,
        "colour": colour,
        "ticks": [
            {"x": plot_left + t * scale, "label": tick_label(t, kind, currency, ticks[-1])}
            for t in ticks
        ],
        "bars": [
            {
                "label": label,
                "text": text,
                "y": plot_top + i * row + 4,
                "height": row - 8,
                "length": value * scale,
            }
            for i, (label, value, text) in enumerate(bars)
        ],
    }


# --- the RFM heat map ------------------------------------------------------------------


def heat_colour(share: float) -> str:
    """The cell colour for a share of the largest count (0 pale .. 1 dark)."""
    share = min(max(share, 0.0), 1.0)
    channels = (round(low + (high - low) * share) for low, high in zip(HEAT_LOW, HEAT_HIGH))
    return "#" + "".join(f"{c:02x}" for c in channels)


def name_lines(name: str, most: int = 13) -> list[str]:
    """A segment name in lines of about `most` characters, split between words, to fit a cell."""
    lines: list[str] = []
    for word in name.split():
        if lines and len(lines[-1]) + 1 + len(word) <= most:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def heat_map(
    chart_id: str,
    title: str,
    counts: dict[tuple[int, int], int],
    names: dict[tuple[int, int], str],
    width: int = HALF_WIDTH,
) -> dict:
    """The RFM grid: recency score 5 (top) to 1 down, frequency-monetary score 1 to 5 across,
    each cell coloured by its customers and named after its segment. A thicker white line
    separates cells of different segments, so each segment shows as one region."""
    plot_left, plot_top = 54, TOP_MARGIN
    cell_w = (width - plot_left - 10) / 5
    cell_h = 58
    top = max(counts.values(), default=0) or 1
    cells = []
    for row, r in enumerate(range(5, 0, -1)):
        for col, fm in enumerate(range(1, 6)):
            count = counts.get((r, fm), 0)
            share = count / top
            name = names.get((r, fm), "")
            cells.append(
                {
                    "x": plot_left + col * cell_w,
                    "y": plot_top + row * cell_h,
                    "width": cell_w,
                    "height": cell_h,
                    "fill": heat_colour(share),
                    "ink": "#ffffff" if share > 0.5 else "#1d2733",
                    "count": count,
                    "segment": name,
                    "name_lines": name_lines(name),
                    "r": r,
                    "fm": fm,
                    # Borders on the right and below where the segment changes.
                    "edge_right": fm < 5 and names.get((r, fm + 1), name) != name,
                    "edge_below": r > 1 and names.get((r - 1, fm), name) != name,
                }
            )
    return {
        "type": "heat",
        "id": chart_id,
        "title": title,
        "width": width,
        "height": plot_top + 5 * cell_h + 44,
        "plot": {"left": plot_left, "top": plot_top, "width": 5 * cell_w, "height": 5 * cell_h},
        "cells": cells,
        "rows": [
            {"y": plot_top + (i + 0.5) * cell_h, "label": str(r)}
            for i, r in enumerate(range(5, 0, -1))
        ],
        "columns": [
            {"x": plot_left + (i + 0.5) * cell_w, "label": str(fm)}
            for i, fm in enumerate(range(1, 6))
        ],
        "most": top,
    }
