"""The run's HTML report: the page a loyalty manager opens every morning.

Written to <reports>/<as-of>.html and copied to <reports>/latest.html when no later as-of
date has a report. Sections: key figures with their change since the previous run,
monthly activity, points (liability, issued / redeemed / expired, redemption and
breakage), members and segments (tiers, lifecycle, the RFM heat map, channel mix),
reachable audiences, identity resolution and data quality, then every snapshot KPI.

Everything is read from the warehouse with set-based SQL and shown as counts, sums and
rates only: no personal data. Charts are inline SVG (geometry in charts.py, drawing in
templates/report.html.j2, autoescaped), so the file renders offline. Every KPI figure in
the last table carries data-kpi, data-period, data-dimension and data-value attributes,
so a test (or a reader's script) can check it against marts.kpis; every chart's <svg>
carries data-chart with its name.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import jinja2

from assets.exports.charts import (
    BLUE,
    GREEN,
    GREY,
    HALF_WIDTH,
    ORANGE,
    RED,
    SERIES_COLOURS,
    TEAL,
    Series,
    bar_chart,
    currency_symbol,
    heat_map,
    is_partial_month,
    line_chart,
    month_key,
    month_label,
    monthly_chart,
    report_months,
)
from assets.exports.kpi_text import kpi_text
from assets.exports.segment_files import CONSENT

TEMPLATES = Path(__file__).parent / "templates"

# The key figures, in groups of cards; each is a snapshot KPI of dimension 'all'.
CARD_GROUPS = [
    (
        "Customers",
        [
            "members",
            "active_members_30d",
            "active_members_90d",
            "retention_rate_90d",
            "repeat_purchase_rate",
            "omnichannel_share",
        ],
    ),
    (
        "Sales, last 12 months",
        ["average_order_value_12m", "revenue_per_member_12m", "purchase_frequency_12m"],
    ),
    (
        "Points",
        [
            "points_outstanding",
            "points_liability",
            "deferred_revenue",
            "redemption_rate",
            "breakage_rate",
            "breakage_estimate",
        ],
    ),
]
# Business order: the customer's life from first purchase to gone, then those who never bought.
LIFECYCLE_ORDER = ["new", "active", "at risk", "lapsed", "churned", "prospect"]
CHANNEL_MIX_ORDER = ["omnichannel", "web-only", "app-only", "store-only", "no purchase"]
CHANNEL_ORDER = ["web", "app", "store", "callcenter"]
NO_PURCHASE_SEGMENT = "Prospect"  # marts.segments' RFM segment of customers who never bought
REPORT_MONTHS = 24
TOP_REASONS = 10


# --- figures as the report writes them ---------------------------------------------------


def format_value(value: float | None, unit: str, currency: str = "") -> str:
    """A KPI figure: rates as percentages, money with the currency's symbol (pence below
    1,000), counts and points whole, other numbers with two decimals; '-' for no value."""
    if value is None:
        return "-"
    if unit == "rate":
        return f"{value:.1%}"
    if unit == "currency":
        amount = f"{abs(value):,.0f}" if abs(value) >= 1000 else f"{abs(value):,.2f}"
        return f"{'-' if value < 0 else ''}{currency_symbol(currency)}{amount}"
    if unit in ("count", "points"):
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def format_delta(
    current: float | None, previous: float | None, unit: str, currency: str = ""
) -> str | None:
    """The change from the previous run: rates in percentage points ('+1.3 pp'), other
    figures as a difference and a relative change ('+100 (+10.0%)'); None without both."""
    if current is None or previous is None:
        return None
    diff = current - previous
    if unit == "rate":
        points = diff * 100
        return "no change" if round(points, 1) == 0 else f"{points:+.1f} pp"
    # A change too small to show at the figure's precision is no change.
    decimals = 0 if unit in ("count", "points") or (unit == "currency" and abs(diff) >= 1000) else 2
    if round(diff, decimals) == 0:
        return "no change"
    shown = (
        format_value(abs(diff), unit, currency)
        if unit == "currency"
        else f"{abs(diff):,.{decimals}f}"
    )
    sign = "+" if diff > 0 else "-"
    relative = f" ({diff / abs(previous):+.1%})" if previous else ""
    return f"{sign}{shown}{relative}"


def delta_tone(current: float | None, previous: float | None, better: int) -> str:
    """'good', 'bad' or 'neutral': the colour of a change, by which way is good news."""
    if current is None or previous is None or current == previous or better == 0:
        return "neutral"
    return "good" if (current > previous) == (better > 0) else "bad"


def in_order(labels: list[str], order: list[str]) -> list[str]:
    """`labels` in the order `order` gives; labels it does not name after them, alphabetically."""
    known = [label for label in order if label in labels]
    return known + sorted(label for label in labels if label not in order)


def by_value(segments: list[tuple[str, int, float | None]]) -> list[tuple[str, int, float | None]]:
    """RFM segments (name, customers, average spend) from the most valuable customers to the
    least; the segment of those who never bought last."""
    return sorted(
        segments,
        key=lambda s: (s[0] == NO_PURCHASE_SEGMENT, -(s[2] or 0), s[0]),
    )


@dataclass(frozen=True)
class Previous:
    """The figures of the latest earlier as-of date in marts.kpi_history."""

    as_of: date | None
    values: dict[tuple[str, str], float]


# --- reading the warehouse ----------------------------------------------------------------


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def previous_run(con: duckdb.DuckDBPyConnection, as_of: date) -> Previous:
    ((earlier,),) = _rows(
        con, "select max(as_of_on) from marts.kpi_history where as_of_on < ?", [as_of]
    )
    if earlier is None:
        return Previous(None, {})
    values = _rows(
        con,
        "select kpi, dimension, value from marts.kpi_history where as_of_on = ?",
        [earlier],
    )
    return Previous(earlier, {(kpi, dimension): value for kpi, dimension, value in values})


def _program(con: duckdb.DuckDBPyConnection) -> tuple[str, float | None]:
    ((currency, point_value),) = _rows(
        con, "select currency, point_value from loyalty.program_settings"
    )
    return currency or "", point_value


def _monthly(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, dict[str, float]]]:
    """kpi -> dimension -> month -> value, for the monthly KPIs the charts show."""
    monthly: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for kpi, dimension, period, value in _rows(
        con,
        "select kpi, dimension, period, value from marts.kpis where period <> 'as_of' and kpi in "
        "('active_members', 'revenue', 'points_issued', 'points_redeemed', 'points_expired', "
        "'points_liability', 'deferred_revenue', 'breakage_estimate')",
    ):
        monthly[kpi][dimension][period] = value
    return monthly


def _summed(per_dimension: dict[str, dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = defaultdict(float)
    for months in per_dimension.values():
        for month, value in months.items():
            total[month] += value or 0
    return dict(total)


def cumulative_rates(
    issued: dict[str, float], redeemed: dict[str, float], expired: dict[str, float]
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Redemption and breakage to date at each month's end, in percent: points redeemed and
    points expired since the start over points issued since the start (the snapshot's
    redemption_rate and breakage_rate, month by month)."""
    redemption, breakage = {}, {}
    total_issued = total_redeemed = total_expired = 0.0
    for month in sorted(set(issued) | set(redeemed) | set(expired)):
        total_issued += issued.get(month, 0)
        total_redeemed += redeemed.get(month, 0)
        total_expired += expired.get(month, 0)
        redemption[month] = 100 * total_redeemed / total_issued if total_issued else None
        breakage[month] = 100 * total_expired / total_issued if total_issued else None
    return redemption, breakage


def _activity(con, as_of: date, currency: str) -> dict[str, Any]:
    monthly = _monthly(con)
    active = _summed(monthly["active_members"])
    revenue = monthly["revenue"]
    issued = _summed(monthly["points_issued"])
    redeemed = _summed(monthly["points_redeemed"])
    expired = _summed(monthly["points_expired"])
    last = month_key(as_of)
    with_data = [
        m for series in (active, issued, redeemed, expired, _summed(revenue)) for m in series
    ]
    months = report_months(
        as_of, min((m for m in with_data if m <= last), default=None), REPORT_MONTHS
    )
    partial = last if is_partial_month(as_of) else None
    channels = in_order(list(revenue), CHANNEL_ORDER)
    redemption, breakage = cumulative_rates(issued, redeemed, expired)
    liability = _summed(monthly["points_liability"])
    deferred = _summed(monthly["deferred_revenue"])
    estimate = {
        m: 100 * v for m, v in monthly["breakage_estimate"].get("all", {}).items() if v is not None
    }
    return {
        "months": months,
        "range": f"{month_label(months[0])} to {month_label(months[-1])}",
        "partial": partial,
        "partial_note": (
            f"{month_label(partial)} is a partial month (to {as_of.day} {as_of:%b}): "
            "its hatched columns are not a drop."
            if partial
            else ""
        ),
        "active_members": monthly_chart(
            "active_members",
            "Active members per month",
            months,
            [Series("active members", BLUE, active)],
            kind="count",
            unit="members",
            partial_month=partial,
        ),
        "revenue": monthly_chart(
            "revenue",
            "Revenue per month, by channel",
            months,
            [
                Series(channel, SERIES_COLOURS[i % len(SERIES_COLOURS)], revenue[channel])
                for i, channel in enumerate(channels)
            ],
            kind="currency",
            unit=currency or "revenue",
            currency=currency,
            partial_month=partial,
            stacked=True,
        ),
        "points": monthly_chart(
            "points",
            "Points issued, redeemed and expired per month",
            months,
            [
                Series("issued", BLUE, issued),
                Series("redeemed", ORANGE, redeemed),
                Series("expired", RED, expired),
            ],
            kind="points",
            unit="points",
            partial_month=partial,
        ),
        "rates": line_chart(
            "redemption_breakage",
            "Redemption and breakage to date (share of all points issued so far)",
            months,
            [
                Series("redemption", ORANGE, redemption),
                Series("breakage", RED, breakage),
                Series("breakage estimate (expired lots)", GREY, estimate),
            ],
            unit="% of issued",
            partial_month=partial,
        ),
        # Empty (no chart) when the program file sets no point_value.
        "liability": monthly_chart(
            "liability",
            "Points liability and the deferred revenue it implies, at each month's end",
            months,
            [Series("liability", BLUE, liability), Series("deferred revenue", ORANGE, deferred)],
            kind="currency",
            unit=currency or "value",
            currency=currency,
            partial_month=partial,
        )
        if liability
        else None,
    }


def _cards(
    snapshot: dict[tuple[str, str], tuple[float, str]], previous: Previous, currency: str
) -> list[dict]:
    groups = []
    for title, kpis in CARD_GROUPS:
        cards = []
        for kpi in kpis:
            if (kpi, "all") not in snapshot:
                continue
            value, unit = snapshot[(kpi, "all")]
            before = previous.values.get((kpi, "all"))
            text = kpi_text(kpi)
            cards.append(
                {
                    "kpi": kpi,
                    "label": text.label,
                    "definition": text.definition,
                    "value": format_value(value, unit, currency),
                    "delta": format_delta(value, before, unit, currency),
                    "tone": delta_tone(value, before, text.better),
                }
            )
        groups.append({"title": title, "cards": cards})
    return groups


def _segments(con, snapshot, currency: str) -> dict[str, Any]:
    def counts(kpi: str) -> dict[str, float]:
        return {d: v for (k, d), (v, _) in snapshot.items() if k == kpi}

    tiers = _rows(
        con,
        "select kpis.dimension, kpis.value from marts.kpis "
        "left join loyalty.program_tiers on program_tiers.tier = kpis.dimension "
        "where kpis.kpi = 'members_per_tier' and kpis.period = 'as_of' "
        "order by coalesce(program_tiers.tier_rank, 0), kpis.dimension",
    )
    lifecycle = counts("customers_per_lifecycle_stage")
    mix = counts("customers_per_channel_mix")
    rfm = by_value(
        _rows(
            con,
            "select rfm_segment, count(*), avg(historical_value)::double from marts.segments "
            "where rfm_segment is not null group by rfm_segment",
        )
    )
    grid = {
        (r, fm): n
        for r, fm, n in _rows(
            con,
            "select r_score, fm_score, count(*) from marts.segments "
            "where r_score is not null and fm_score is not null group by all",
        )
    }
    # Each cell's segment: the first rule (by priority) that covers it, as marts.segments applies them.
    names = {
        (r, fm): name
        for r, fm, name in _rows(
            con,
            "select r.score, fm.score, arg_min(rules.segment, rules.priority) "
            "from range(1, 6) as r(score) cross join range(1, 6) as fm(score) "
            "join loyalty.program_rfm_segments as rules "
            "on r.score between rules.r_min and rules.r_max and fm.score between rules.fm_min and rules.fm_max "
            "group by all",
        )
    }
    symbol = currency_symbol(currency)
    return {
        "tiers": bar_chart(
            "tiers",
            "Members per tier (lowest tier first)",
            [(tier, n, f"{n:,.0f}") for tier, n in tiers],
            kind="count",
            unit="members",
        ),
        "lifecycle": bar_chart(
            "lifecycle",
            "Customers per lifecycle stage",
            [
                (stage, lifecycle[stage], f"{lifecycle[stage]:,.0f}")
                for stage in in_order(list(lifecycle), LIFECYCLE_ORDER)
            ],
            kind="count",
            unit="customers",
            colour=TEAL,
        ),
        "rfm_segments": bar_chart(
            "rfm_segments",
            "RFM segments, highest average spend first",
            [
                (
                    name,
                    n,
                    f"{n:,.0f}"
                    if spend is None or name == NO_PURCHASE_SEGMENT
                    else f"{n:,.0f} · avg {symbol}{spend:,.0f}",
                )
                for name, n, spend in rfm
            ],
            kind="count",
            unit="customers",
            colour=GREEN,
            width=HALF_WIDTH,
            label_width=130,
            value_width=150,
        ),
        "channel_mix": bar_chart(
            "channel_mix",
            "Customers by the channels they buy in",
            [
                (mix_name, mix[mix_name], f"{mix[mix_name]:,.0f}")
                for mix_name in in_order(list(mix), CHANNEL_MIX_ORDER)
            ],
            kind="count",
            unit="customers",
            colour=ORANGE,
        ),
        "rfm_heat": heat_map(
            "rfm_heat", "RFM grid: customers per recency and frequency-monetary score", grid, names
        ),
        "rfm_order": [name for name, _, _ in rfm],
    }


def _audiences(con, rfm_order: list[str]) -> list[list[dict]]:
    """Customers per exported segment, and how many of them may be contacted per channel
    (the consent rules of the exports, assets/exports/segment_files.py CONSENT), in two
    tables side by side: all members and the RFM segments; lifecycle and custom segments."""
    rows = _rows(
        con,
        f"""
        select memberships.segmentation, memberships.segment, count(*),
               count(*) filter (where {CONSENT["email"]}), count(*) filter (where {CONSENT["push"]})
        from marts.segment_memberships as memberships
        join core.customers as customers using (customer_id)
        where memberships.segmentation in ('rfm', 'lifecycle', 'custom')
        group by all
        """,
    )
    ((everyone, email, push),) = _rows(
        con,
        f"select count(*), count(*) filter (where {CONSENT['email']}), "
        f"count(*) filter (where {CONSENT['push']}) from core.customers as customers",
    )
    found = {(segmentation, segment): figures for segmentation, segment, *figures in rows}
    orders = {
        "rfm": rfm_order,
        "lifecycle": LIFECYCLE_ORDER,
        "custom": [],
    }
    titles = {"rfm": "RFM segment", "lifecycle": "Lifecycle stage", "custom": "Marketing's segment"}

    def line(group: str, name: str, figures: tuple[int, int, int]) -> dict:
        customers, by_email, by_push = figures
        return {
            "group": group,
            "segment": name,
            "customers": customers,
            "email": by_email,
            "push": by_push,
            "email_share": by_email / customers if customers else 0,
            "push_share": by_push / customers if customers else 0,
        }

    def group(segmentation: str) -> list[dict]:
        names = [segment for s, segment in found if s == segmentation]
        return [
            line(titles[segmentation], name, found[(segmentation, name)])
            for name in in_order(names, orders[segmentation])
        ]

    everyone_line = line("All members", "everyone", (everyone, email, push))
    return [[everyone_line, *group("rfm")], group("lifecycle") + group("custom")]


def _points(
    con, snapshot, previous: Previous, currency: str, point_value: float | None
) -> dict[str, Any]:
    outstanding = snapshot.get(("points_outstanding", "all"), (None, "points"))[0]
    liability = snapshot.get(("points_liability", "all"), (None, "currency"))[0]
    deferred = snapshot.get(("deferred_revenue", "all"), (None, "currency"))[0]
    breakage = snapshot.get(("breakage_estimate", "all"), (None, "rate"))[0]
    ((expiring,),) = _rows(
        con, "select coalesce(sum(points_expiring_next_30_days), 0)::double from loyalty.balances"
    )
    tiers = _rows(
        con,
        "select balances.tier, count(*), coalesce(sum(balances.points_balance), 0)::double "
        "from loyalty.balances left join loyalty.program_tiers on program_tiers.tier = balances.tier "
        "group by balances.tier, program_tiers.tier_rank order by coalesce(program_tiers.tier_rank, 0), balances.tier",
    )

    def money(points: float | None) -> str:
        if points is None or point_value is None:
            return "-"
        return format_value(points * point_value, "currency", currency)

    return {
        "point_value": None
        if point_value is None
        else f"1 point = {format_value(point_value, 'currency', currency)}",
        "outstanding": format_value(outstanding, "points"),
        "liability": format_value(liability, "currency", currency),
        "liability_delta": format_delta(
            liability, previous.values.get(("points_liability", "all")), "currency", currency
        ),
        "deferred_revenue": format_value(deferred, "currency", currency),
        "breakage_estimate": "no lot has expired yet"
        if breakage is None
        else format_value(breakage, "rate"),
        "expiring": format_value(expiring, "points"),
        "expiring_money": money(expiring),
        "tiers": [
            {
                "tier": tier,
                "members": members,
                "points": format_value(points, "points"),
                "money": money(points),
            }
            for tier, members, points in tiers
        ],
    }


def _identity(con, snapshot) -> dict[str, Any]:
    rates = {d: v for (k, d), (v, _) in snapshot.items() if k == "identity_match_rate"}
    records = {d: v for (k, d), (v, _) in snapshot.items() if k == "customer_records"}
    spread = _rows(
        con,
        "select least(records, 6) as records, count(*) from "
        "(select customer_id, count(*) as records from identity.source_records group by customer_id) "
        "group by all order by 1",
    )
    return {
        "match_rates": bar_chart(
            "match_rates",
            "Match rate per source (records joined to another source)",
            [
                (source, 100 * rates[source], format_value(rates[source], "rate"))
                for source in in_order(list(rates), CHANNEL_ORDER)
            ],
            kind="percent",
            unit="% of the source's records",
        ),
        "records_per_customer": bar_chart(
            "records_per_customer",
            "Customers by number of source records",
            [
                (
                    "6 or more records" if n == 6 else f"{n} record{'s' if n > 1 else ''}",
                    c,
                    f"{c:,.0f}",
                )
                for n, c in spread
            ],
            kind="count",
            unit="customers",
            colour=TEAL,
        ),
        "records_per_source": bar_chart(
            "records_per_source",
            "Customer records per source",
            [(s, records[s], f"{records[s]:,.0f}") for s in in_order(list(records), CHANNEL_ORDER)],
            kind="count",
            unit="records",
            colour=GREEN,
        ),
    }


def _quality(con) -> dict[str, Any]:
    sources = _rows(
        con,
        "select source, sum(rows_read), sum(rows_loaded), sum(rows_quarantined) "
        "from quality.source_summary group by source",
    )
    by_source = {s: figures for s, *figures in sources}
    # A quarantined row lists all its problems joined by '; ': each counts once. Reasons are
    # the contract's words (column and rule), never the row's content.
    reasons = _rows(
        con,
        f"""
        with problems as (
            select source, 'row quarantined' as outcome, unnest(string_split(reason, '; ')) as reason
            from quality.quarantine
            union all
            select source, 'field emptied, row loaded', reason from quality.field_issues
        )
        select reason, source, outcome, count(*) as records
        from problems group by all order by records desc, reason, source limit {TOP_REASONS}
        """,
    )
    return {
        "sources": [
            {
                "source": s,
                "read": by_source[s][0],
                "loaded": by_source[s][1],
                "quarantined": by_source[s][2],
                "share": format_value(
                    by_source[s][2] / by_source[s][0] if by_source[s][0] else 0, "rate"
                ),
            }
            for s in in_order(list(by_source), CHANNEL_ORDER)
        ],
        "reasons": [
            {"reason": reason, "source": source, "outcome": outcome, "records": records}
            for reason, source, outcome, records in reasons
        ],
    }


def report_data(con: duckdb.DuckDBPyConnection, as_of: date) -> dict[str, Any]:
    """Everything the template shows, read from the warehouse."""
    currency, point_value = _program(con)
    rows = _rows(
        con,
        "select kpi, dimension, value, unit from marts.kpis where period = 'as_of' order by kpi, dimension",
    )
    snapshot = {(kpi, dimension): (value, unit) for kpi, dimension, value, unit in rows}
    previous = previous_run(con, as_of)
    segments = _segments(con, snapshot, currency)
    return {
        "as_of": as_of.isoformat(),
        "as_of_text": f"{as_of.day} {as_of:%B %Y}",
        "previous": None
        if previous.as_of is None
        else f"{previous.as_of.day} {previous.as_of:%B %Y}",
        "currency": currency,
        "cards": _cards(snapshot, previous, currency),
        "activity": _activity(con, as_of, currency),
        "points": _points(con, snapshot, previous, currency, point_value),
        "segments": segments,
        "audiences": _audiences(con, segments["rfm_order"]),
        "campaigns": _campaigns(con, currency),
        "identity": _identity(con, snapshot),
        "quality": _quality(con),
        "kpis": [
            {
                "kpi": kpi,
                "label": kpi_text(kpi).label,
                "dimension": dimension,
                "value_repr": repr(value),
                "shown": format_value(value, unit, currency),
                "unit": "points" if unit == "points" else "",
                "delta": format_delta(value, previous.values.get((kpi, dimension)), unit, currency)
                or "",
            }
            for kpi, dimension, value, unit in rows
        ],
    }


def _campaigns(con: duckdb.DuckDBPyConnection, currency: str) -> list[dict]:
    """marts.campaign_results as the report's rows: each started campaign against its holdout."""
    rows = _rows(
        con,
        "select campaign, channel, starts_on, ends_on, is_finished, treated_members, holdout_members, "
        "treated_spend_per_member, holdout_spend_per_member, uplift_spend_per_member, uplift_ci_low, "
        "uplift_ci_high, points_issued, budget_points, cost_per_incremental_revenue "
        "from marts.campaign_results order by starts_on, campaign",
    )
    money = lambda value: format_value(value, "currency", currency)  # noqa: E731
    return [
        {
            "campaign": campaign,
            "channel": channel,
            "period": f"{starts_on.isoformat()} to {ends_on.isoformat()}"
            + ("" if finished else " (running)"),
            "treated": format_value(treated, "count"),
            "holdout": format_value(holdout, "count"),
            "treated_spend": money(treated_spend),
            "holdout_spend": money(holdout_spend),
            "uplift": money(uplift),
            "interval": "-" if low is None else f"{money(low)} to {money(high)}",
            "points": f"{format_value(points, 'points')} of {format_value(budget, 'points')}",
            "cost": "-" if cost is None else f"{cost:,.4f}",
        }
        for (
            campaign,
            channel,
            starts_on,
            ends_on,
            finished,
            treated,
            holdout,
            treated_spend,
            holdout_spend,
            uplift,
            low,
            high,
            points,
            budget,
            cost,
        ) in rows
    ]


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["whole"] = lambda value: f"{value:,.0f}"
    env.filters["px"] = lambda value: f"{value:.1f}"
    env.filters["percent"] = lambda value: f"{value:.0%}"
    return env


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
