"""The report's plain logic, without a warehouse or a browser: axis ticks, months, figures,
changes, orders, chart geometry; and the program file's point_value."""

import re
from datetime import date

import pytest

from assets.exports.charts import (
    Series,
    heat_colour,
    is_partial_month,
    monthly_chart,
    name_lines,
    nice_ticks,
    report_months,
    tick_label,
)
from assets.exports.kpi_text import KPI_TEXT, kpi_text
from assets.exports.report import (
    by_value,
    cumulative_rates,
    delta_tone,
    format_delta,
    format_value,
    in_order,
)
from assets.loyalty.program import DEFAULT_PROGRAM, ProgramError, load_program
from assets.shared.warehouse import model_sql


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (1715, [0, 500, 1000, 1500, 2000]),  # 1715 / 5 = 343 -> a step of 500
        (124592, [0, 25000, 50000, 75000, 100000, 125000]),  # 24918 -> 25,000
        (15, [0, 5, 10, 15]),  # 3 -> 5, and 15 is a tick itself
        (100, [0, 20, 40, 60, 80, 100]),
        (35.3, [0, 10, 20, 30, 40]),  # 7.06 -> 10
        (0.353, [0, 0.1, 0.2, 0.3, 0.4]),  # no 0.30000000000000004
        (1, [0, 0.2, 0.4, 0.6, 0.8, 1]),
        (0, [0, 1]),  # nothing to show: still an axis
    ],
)
def test_nice_ticks_by_hand(top, ticks):
    assert nice_ticks(top) == ticks


def test_whole_ticks_for_counts():
    assert nice_ticks(2) == [0, 0.5, 1, 1.5, 2]
    assert nice_ticks(2, whole=True) == [0, 1, 2]
    assert nice_ticks(12, whole=True) == [0, 5, 10, 15]  # 2.4 -> 5: no step of 2.5
    assert nice_ticks(1715, whole=True) == [0, 500, 1000, 1500, 2000]


def test_tick_labels():
    assert [tick_label(v, "count") for v in (0, 2500, 125000, 2500000)] == [
        "0",
        "2,500",
        "125k",
        "2.5M",
    ]
    assert tick_label(25000, "currency", "GBP") == "£25k"
    assert tick_label(40, "percent") == "40%"
    assert tick_label(5, "currency", "CHF") == "CHF 5"
    # One style per axis, from its last tick.
    assert [tick_label(v, "currency", "GBP", top=12500) for v in (0, 7500, 12500)] == [
        "£0",
        "£7.5k",
        "£12.5k",
    ]


def test_partial_month_and_the_shared_months():
    assert is_partial_month(date(2026, 11, 26))
    assert not is_partial_month(date(2026, 6, 30))
    assert not is_partial_month(date(2024, 2, 29))  # a leap year's last day of February
    assert is_partial_month(date(2026, 2, 27))
    # 24 months ending with the as-of month, or fewer when the data starts later.
    months = report_months(date(2026, 11, 26), "2023-12")
    assert (len(months), months[0], months[-1]) == (24, "2024-12", "2026-11")
    assert report_months(date(2026, 6, 15), "2026-04") == ["2026-04", "2026-05", "2026-06"]
    assert report_months(date(2026, 6, 15), None, most=2) == ["2026-05", "2026-06"]
    assert report_months(date(2026, 1, 5), "2025-11") == [
        "2025-11",
        "2025-12",
        "2026-01",
    ]  # over a new year


def test_figures_and_their_change():
    assert format_value(0.8215, "rate") == "82.2%"
    assert format_value(23295.4, "currency", "GBP") == "£23,295"
    assert format_value(41.2, "currency", "GBP") == "£41.20"
    assert format_value(-2.5, "currency", "EUR") == "-€2.50"
    assert format_value(2329546, "points") == "2,329,546"
    assert format_value(2.104, "number") == "2.10"
    assert format_value(None, "count") == "-"
    assert format_delta(1100, 1000, "count") == "+100 (+10.0%)"
    assert format_delta(0.25, 0.2, "rate") == "+5.0 pp"
    assert format_delta(0.2, 0.25, "rate") == "-5.0 pp"
    assert format_delta(41.2, 43.7, "currency", "GBP") == "-£2.50 (-5.7%)"
    assert format_delta(25000.0, 20000.0, "currency", "GBP") == "+£5,000 (+25.0%)"
    assert format_delta(5, 0, "count") == "+5"  # no relative change from nothing
    assert format_delta(3, 3, "count") == "no change"
    assert format_delta(0.5, 0.5004, "rate") == "no change"  # below the 0.1 pp shown
    assert format_delta(3, None, "count") is None  # no earlier run
    assert delta_tone(5, 4, +1) == "good" and delta_tone(5, 4, -1) == "bad"
    assert delta_tone(3, 4, +1) == "bad" and delta_tone(5, 4, 0) == "neutral"
    assert delta_tone(5, None, +1) == "neutral" and delta_tone(4, 4, +1) == "neutral"


def test_business_orders():
    stages = ["active", "at risk", "churned", "lapsed", "new", "prospect", "dormant"]
    order = ["new", "active", "at risk", "lapsed", "churned", "prospect"]
    assert in_order(stages, order) == [
        "new",
        "active",
        "at risk",
        "lapsed",
        "churned",
        "prospect",
        "dormant",
    ]
    segments = [
        ("Champions", 10, 400.0),
        ("Prospect", 50, 0.0),
        ("Lost", 5, 600.0),
        ("New", 2, None),
    ]
    assert [name for name, _, _ in by_value(segments)] == ["Lost", "Champions", "New", "Prospect"]


def test_redemption_and_breakage_to_date():
    redemption, breakage = cumulative_rates(
        {"2026-04": 100, "2026-05": 250}, {"2026-05": 35}, {"2026-06": 35}
    )
    assert redemption == {"2026-04": 0.0, "2026-05": 10.0, "2026-06": 10.0}
    assert breakage == {"2026-04": 0.0, "2026-05": 0.0, "2026-06": 10.0}
    assert cumulative_rates({}, {"2026-01": 5}, {}) == ({"2026-01": None}, {"2026-01": None})


def test_monthly_columns_geometry():
    chart = monthly_chart(
        "x",
        "t",
        ["2026-05", "2026-06"],
        [
            Series("a", "#000001", {"2026-05": 10, "2026-06": 5}),
            Series("b", "#000002", {"2026-05": 5}),
        ],
        kind="count",
        unit="things",
        partial_month="2026-06",
        stacked=True,
    )
    # Ticks 0, 5, 10, 15 (the May stack is 15) over a 150-pixel plot: 10 pixels a unit.
    assert [t["label"] for t in chart["axis"].ticks] == ["0", "5", "10", "15"]
    heights = [(c["series"], c["height"]) for c in chart["columns"]]
    assert heights == [(0, 100.0), (1, 50.0), (0, 50.0), (1, 0.0)]
    may_a, may_b = chart["columns"][0], chart["columns"][1]
    assert may_b["y"] + may_b["height"] == pytest.approx(may_a["y"])  # stacked on top
    assert [c["partial"] for c in chart["columns"]] == [False, False, True, True]
    assert chart["partial"]["x"] > chart["plot"]["left"]
    assert [label["year"] for label in chart["x_labels"]] == ["2026", ""]


def test_heat_map_colours_and_names():
    assert heat_colour(0) == "#ebf1f8" and heat_colour(1) == "#1f4e79"
    assert name_lines("Potential Loyalists") == ["Potential", "Loyalists"]
    assert name_lines("Can't Lose Them") == ["Can't Lose", "Them"]
    assert name_lines("Champions") == ["Champions"]


def test_every_kpi_of_the_kpis_model_has_a_label_and_a_definition():
    units = re.search(
        r"units \(kpi, unit\) as \(\s*values(.*?)\n\)", model_sql("marts/kpis"), re.S
    ).group(1)
    kpis = re.findall(r"\('(\w+)', '\w+'\)", units)
    assert len(kpis) > 30
    assert set(kpis) == set(KPI_TEXT)
    assert all(KPI_TEXT[kpi].label and KPI_TEXT[kpi].definition for kpi in kpis)
    assert kpi_text("some_new_share").label == "Some new share"


def test_point_value_is_read_and_must_be_positive(tmp_path):
    assert load_program().point_value == 0.01  # the bundled program
    text = DEFAULT_PROGRAM.read_text(encoding="utf-8")
    assert "\npoint_value: 0.01\n" in text
    path = tmp_path / "program.yaml"
    path.write_text(text.replace("\npoint_value: 0.01\n", "\n"))
    assert load_program(path).point_value is None  # not set: liabilities in points only
    for bad in ("0", "-0.01", "'cheap'", "true", ".nan"):
        path.write_text(text.replace("\npoint_value: 0.01\n", f"\npoint_value: {bad}\n"))
        with pytest.raises(ProgramError) as err:
            load_program(path)
        assert str(err.value).startswith(f"{path}: point_value must be a number > 0, got ")
