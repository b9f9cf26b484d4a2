"""The run's HTML report, rendered from a small hand-made warehouse (no pipeline run).

The warehouse is tests/report_helpers.py's: every figure asserted here is worked out there.
"""

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from report_helpers import AS_OF, PREVIOUS_AS_OF, SNAPSHOT, hand_made_warehouse

from assets.exports.report import write_report


@pytest.fixture(scope="module")
def con():
    con = hand_made_warehouse()
    yield con
    con.close()


@pytest.fixture(scope="module")
def page(con, tmp_path_factory):
    return write_report(con, tmp_path_factory.mktemp("reports"), AS_OF).read_text()


def section(page: str, heading: str) -> str:
    """The page from an <h2> to the next one."""
    start = page.index(f"<h2>{heading}")
    end = page.find("<h2>", start + 4)
    return page[start : end if end > 0 else None]


def chart(page: str, name: str) -> str:
    start = page.index(f'data-chart="{name}"')
    return page[start : page.index("</svg>", start)]


class Figures(HTMLParser):
    """The data-kpi cells of the "All figures" table: (kpi, dimension) -> data-value."""

    def __init__(self):
        super().__init__()
        self.found = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-kpi" in attrs:
            self.found[(attrs["data-kpi"], attrs["data-dimension"])] = float(attrs["data-value"])


def test_every_snapshot_figure_is_in_the_page_with_its_unit(page):
    parser = Figures()
    parser.feed(page)
    assert parser.found == {(kpi, dimension): value for kpi, dimension, value, _ in SNAPSHOT}
    # Rates as percentages (a KPI the report has no text for included), money in the program's currency.
    assert 'data-dimension="all" data-value="0.5">50.0%<' in page
    assert (
        'data-kpi="identity_match_rate" data-period="as_of" data-dimension="web" data-value="0.25">25.0%<'
        in page
    )
    assert 'data-value="12.5">£12.50<' in page
    assert 'data-value="1000.0">1,000 points<' in page


def test_key_figure_cards_have_labels_definitions_and_the_change_since_the_previous_run(page):
    cards = section(page, "Key figures")
    assert "<h3>Customers</h3>" in cards and "<h3>Points</h3>" in cards
    members = cards[
        cards.index('data-card="members"') : cards.index('data-card="active_members_30d"')
    ]
    assert '<div class="label">Members</div>' in members and '<div class="value">5</div>' in members
    assert "Unified customers" in members  # its definition
    # 4 -> 5 members: up, which is good news.
    assert (
        '<div class="delta good" data-delta="members">+1 (+25.0%) since last run</div>' in members
    )
    # 40% -> 50% retention: percentage points.
    assert 'data-delta="retention_rate_90d">+10.0 pp since last run<' in cards
    # £43.70 -> £41.20 average order value: down, bad news.
    assert (
        '<div class="delta bad" data-delta="average_order_value_12m">-£2.50 (-5.7%) since last run</div>'
        in cards
    )
    assert 'data-delta="active_members_30d">no change since last run<' in cards
    assert '<div class="value">£10.00</div>' in cards  # the points liability
    # The header names the run compared with.
    assert f"Changes are against the previous run, as of {PREVIOUS_AS_OF.day} June 2026." in page


def test_every_monthly_chart_shares_the_months_and_marks_the_partial_one(page):
    # April is the first month with data (points issued, active members); revenue starts in May
    # but its chart still starts in April. June is partial: the as-of date is the 15th.
    for name in ("active_members", "revenue", "points", "redemption_breakage"):
        svg = chart(page, name)
        months = re.findall(r'class="tick">(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)<', svg)
        assert months == ["Apr", "May", "Jun"], name
        assert ">partial</text>" in svg, name
    assert "Jun 2026 is a partial month (to 15 Jun)" in page
    # The partial month's columns are hatched, the others solid.
    revenue = chart(page, "revenue")
    assert (
        'fill="url(#hatch-revenue-0)"><title>web, Jun 2026: £7 (partial month)</title>' in revenue
    )
    assert 'fill="#4e79a7"><title>web, May 2026: £10</title>' in revenue
    # Stacked revenue: May is 10 + 5 = 15, so the axis runs to £15 in steps of £5.
    assert [t for t in re.findall(r'class="tick">(£\d+)<', revenue)] == ["£0", "£5", "£10", "£15"]


def test_points_chart_shows_redeemed_and_expired_and_the_rates_to_date(page):
    points = chart(page, "points")
    assert "<title>redeemed, May 2026: 30</title>" in points
    assert "<title>expired, Jun 2026: 20 (partial month)</title>" in points
    assert "<title>issued, May 2026: 250</title>" in points  # earn 200 + bonus 50
    for name in ("issued", "redeemed", "expired"):
        assert f'class="legend">{name}</text>' in points
    rates = chart(page, "redemption_breakage")
    # Issued to date: 100, 350, 350; redeemed 0, 30, 30; expired 0, 0, 20.
    assert "redemption, May 2026: 8.6%" in rates and "breakage, Jun 2026: 5.7%" in rates
    assert "breakage, Apr 2026: 0.0%" in rates
    # The estimate from lots past their expiry: no point before June, when there is one.
    assert "breakage estimate (expired lots), Jun 2026: 40.0%" in rates
    assert "breakage estimate (expired lots), May 2026" not in rates


def test_liability_and_deferred_revenue_month_by_month(page):
    liability = chart(page, "liability")
    assert "<title>liability, May 2026: £8</title>" in liability
    assert "<title>deferred revenue, May 2026: £8</title>" in liability
    assert "<title>deferred revenue, Jun 2026: £6 (partial month)</title>" in liability
    points = section(page, "Points")
    assert "<td data-deferred-revenue>£6.00</td>" in points
    assert "<span data-breakage-estimate>40.0%</span>" in points


def test_points_liability_in_the_program_currency(page):
    points = section(page, "Points")
    assert "<td data-liability>£10.00</td>" in points  # 1,000 points x £0.01
    assert "<td>Expiring in the next 30 days</td><td>150</td><td>£1.50</td>" in points
    assert "1 point = £0.01" in points
    # Per tier, in the program's tier order: Member (400 points) before Gold (600).
    assert "<tr><td>Member</td><td>4</td><td>400</td><td>£4.00</td></tr>" in points
    assert points.index("<td>Member</td>") < points.index("<td>Gold</td>")


def test_segments_are_in_business_order_and_the_rfm_grid_names_its_cells(page):
    lifecycle = chart(page, "lifecycle")
    stages = re.findall(r'class="label">([^<]+)<', lifecycle)
    assert stages == ["new", "active", "at risk", "churned", "prospect"]  # not alphabetical
    rfm = chart(page, "rfm_segments")
    # Highest average spend first (1000, 600, 400), those who never bought last.
    assert re.findall(r'class="label">([^<]+)<', rfm) == [
        "Can&#39;t Lose Them",
        "Lost",
        "Champions",
        "Prospect",
    ]
    assert "2 · avg £400" in rfm
    heat = chart(page, "rfm_heat")
    assert "<title>Champions, recency 5, frequency-monetary 4: 2 customers</title>" in heat
    assert "<title>Lost, recency 1, frequency-monetary 1: 1 customers</title>" in heat
    assert (
        "<title>New, recency 5, frequency-monetary 1: 0 customers</title>" in heat
    )  # empty cells named too
    # The fullest cell is the darkest.
    assert re.search(r'fill="#1f4e79"><title>Champions, recency 5, frequency-monetary 4', heat)
    tiers = chart(page, "tiers")
    assert tiers.index(">Member<") < tiers.index(">Gold<")


def test_reachable_audiences_per_segment_and_channel(page):
    audiences = section(page, "Reachable audiences")

    def row(name):
        return re.search(rf"<tr><td>{name}</td>((?:<td>[^<]*</td>)+)</tr>", audiences).group(1)

    # Everyone: e-mail c1 and c4 (c2 consented but has no e-mail), push c1 and c3.
    assert row("everyone") == "<td>5</td><td>2</td><td>40%</td><td>2</td><td>40%</td>"
    assert row("Champions") == "<td>2</td><td>1</td><td>50%</td><td>1</td><td>50%</td>"
    assert row("VIPs") == "<td>1</td><td>1</td><td>100%</td><td>1</td><td>100%</td>"
    assert "<td>Top</td>" not in audiences  # value bands are not exported
    assert (
        audiences.index("<td>new</td>")
        < audiences.index("<td>active</td>")
        < audiences.index("<td>churned</td>")
    )


def test_identity_shows_percent_match_rates_and_records_per_customer(page):
    rates = chart(page, "match_rates")
    assert ">25.0%</text>" in rates and ">100%</text>" in rates  # a bar's value and the axis' end
    spread = chart(page, "records_per_customer")
    assert re.findall(r'class="label">([^<]+)<', spread) == ["1 record", "2 records", "3 records"]
    assert re.findall(r'class="value">([^<]+)<', spread) == ["3", "1", "1"]


def test_quality_lists_the_top_problems_each_counted_once(page):
    quality = section(page, "Data quality")
    assert "<tr><td>app</td><td>5</td><td>3</td><td>2</td><td>40.0%</td></tr>" in quality
    problems = re.findall(
        r'<tr><td>([^<]+)</td><td class="text">(\w+)</td><td class="text">([^<]+)</td><td>(\d+)</td></tr>',
        quality,
    )
    assert problems == [
        ("malformed JSON line", "app", "row quarantined", "2"),
        ("amount is negative", "web", "row quarantined", "1"),
        ("birth_date is not a date as %Y-%m-%d", "web", "field emptied, row loaded", "1"),
        ("missing required order_id", "web", "row quarantined", "1"),
    ]


def test_report_escapes_what_it_shows_and_is_self_contained(page):
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page and " src=" not in page
    assert "@example.com" not in page  # aggregates only


def test_latest_is_the_newest_date_not_the_last_run(con, tmp_path):
    write_report(con, tmp_path, AS_OF)
    newest = (tmp_path / "latest.html").read_text()
    assert newest == (tmp_path / f"{AS_OF.isoformat()}.html").read_text()
    write_report(con, tmp_path, AS_OF - timedelta(days=30))  # a run for a past date
    assert (tmp_path / "latest.html").read_text() == newest
    assert (tmp_path / f"{(AS_OF - timedelta(days=30)).isoformat()}.html").exists()
