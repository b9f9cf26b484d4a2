"""The run's HTML report, rendered from a small hand-made warehouse (no pipeline run)."""

from datetime import date

import duckdb
import pytest

from assets.exports.report import write_report

AS_OF = date(2026, 6, 30)


@pytest.fixture
def con():
    con = duckdb.connect()
    for schema in ("marts", "loyalty", "quality"):
        con.execute(f"create schema {schema}")
    con.execute(
        "create table marts.kpis as with t(kpi, period, dimension, value, unit) as (values "
        "('members', 'as_of', 'all', 3.0, 'count'), "
        "('identity_match_rate', 'as_of', 'web', 0.25, 'rate'), "
        "('some_new_share', 'as_of', 'all', 0.5, 'rate'), "
        "('average_spend', 'as_of', 'omnichannel', 12.5, 'currency'), "
        "('members_per_tier', 'as_of', 'Gold', 1.0, 'count'), "
        "('members_per_tier', 'as_of', 'Silver', 2.0, 'count'), "
        "('customers_per_rfm_segment', 'as_of', '<script>alert(1)</script>', 3.0, 'count'), "
        "('revenue', '2026-05', 'web', 10.0, 'currency'), "
        "('revenue', '2026-05', 'store', 5.0, 'currency'), "
        "('revenue', '2026-06', 'web', 7.0, 'currency')"
        ")"
        " select kpi, period, dimension, value::double as value, unit from t"
    )
    # fm_score deliberately not round((f + m) / 2): the report must read it, not re-derive it.
    con.execute(
        "create table marts.segments as select * from (values "
        "('c1', 5, 1, 1, 4), ('c2', 5, 1, 1, 4), ('c3', null, null, null, null)"
        ") as t(customer_id, r_score, f_score, m_score, fm_score)"
    )
    con.execute(
        "create table loyalty.program_tiers as select * from (values ('Silver', 1), ('Gold', 2)) t(tier, tier_rank)"
    )
    con.execute(
        "create table quality.source_summary as select * from (values ('web', 10, 9, 1)) "
        "t(source, rows_read, rows_loaded, rows_quarantined)"
    )
    return con


def test_report_renders_the_warehouse_figures(con, tmp_path):
    page = write_report(con, tmp_path, AS_OF).read_text()
    assert (tmp_path / "latest.html").read_text() == page
    # Rates are the KPIs whose unit says so, a KPI the report has never heard of included.
    assert (
        'data-kpi="some_new_share" data-period="as_of" data-dimension="all" data-value="0.5">50.0%<'
        in page
    )
    assert (
        'data-kpi="identity_match_rate" data-period="as_of" data-dimension="web" data-value="0.25">25.0%<'
        in page
    )
    assert 'data-value="12.5">12.50<' in page and 'data-value="3.0">3<' in page
    # The match-rate chart shows percent.
    assert ">25</text>" in page
    # The RFM grid counts customers by marts.segments.fm_score: both in row 5, column 4.
    grid = page[page.index("<h2>RFM grid") : page.index("<h2>Activity")]
    assert "<tr><td>5</td><td>0</td><td>0</td><td>0</td><td>2</td><td>0</td></tr>" in grid
    # The tier funnel follows the programme's tier order.
    assert page.index(">Silver<") < page.index(">Gold<")  # not alphabetical
    assert "Monthly revenue (max 15)" in page
    assert "<td>web</td><td>10</td><td>9</td><td>1</td>" in page


def test_report_escapes_what_it_shows_and_is_self_contained(con, tmp_path):
    page = write_report(con, tmp_path, AS_OF).read_text()
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "http://" not in page and "https://" not in page and " src=" not in page


def test_latest_is_the_newest_date_not_the_last_run(con, tmp_path):
    from datetime import timedelta

    write_report(con, tmp_path, AS_OF)
    newest = (tmp_path / "latest.html").read_text()
    write_report(con, tmp_path, AS_OF - timedelta(days=30))  # a run for a past date
    assert (tmp_path / "latest.html").read_text() == newest
    assert AS_OF.isoformat() in newest and (AS_OF - timedelta(days=30)).isoformat() not in newest
    assert (tmp_path / f"{(AS_OF - timedelta(days=30)).isoformat()}.html").exists()
