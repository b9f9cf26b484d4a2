"""marts.kpi_history: each run adds its snapshot KPIs, a rerun for the same as-of date
replaces them, and the report shows the change against the previous as-of date."""

from datetime import date

import pytest
from report_helpers import AS_OF, MONTHLY, PREVIOUS_AS_OF, SNAPSHOT, hand_made_warehouse, write_kpis

from assets.exports.report import render_report
from assets.marts.kpi_history import record_kpi_history
from assets.shared.warehouse import connect, set_variable


def history(con) -> list[tuple]:
    return con.execute(
        "select as_of_on, recorded_at, kpi, dimension, value, unit from marts.kpi_history order by all"
    ).fetchall()


@pytest.fixture
def con():
    con = hand_made_warehouse()  # two runs: PREVIOUS_AS_OF with 4 members, AS_OF with 5
    yield con
    con.close()


def test_two_runs_give_two_history_points_and_the_report_shows_the_change(con):
    members = con.execute(
        "select as_of_on, value from marts.kpi_history where kpi = 'members' order by as_of_on"
    ).fetchall()
    assert members == [(PREVIOUS_AS_OF, 4.0), (AS_OF, 5.0)]
    # Every snapshot figure of each run, and nothing monthly.
    assert con.execute("select count(*) from marts.kpi_history").fetchall()[0][0] == 2 * len(
        SNAPSHOT
    )
    page = render_report(con, AS_OF)
    assert 'data-delta="members">+1 (+25.0%) since last run<' in page
    # The earlier date's own report has nothing earlier to compare with.
    earlier_page = render_report(con, PREVIOUS_AS_OF)
    assert 'data-delta="members">no earlier run<' in earlier_page
    assert "First run in this warehouse&#39;s history" in earlier_page


def test_a_rerun_for_the_same_date_replaces_its_figures(con):
    before = history(con)
    record_kpi_history(con)  # the same as-of date, the same figures: nothing changes
    assert history(con) == before
    con.execute("update marts.kpis set value = 7 where kpi = 'members' and period = 'as_of'")
    record_kpi_history(con)
    after = history(con)
    assert len(after) == len(before)  # replaced, not added
    members = [(as_of, value) for as_of, _, kpi, _, value, _ in after if kpi == "members"]
    assert members == [(PREVIOUS_AS_OF, 4.0), (AS_OF, 7.0)]
    # Only the changed figure is newly recorded; the earlier date is untouched.
    changed = {(row[0], row[2]) for row in set(after) - set(before)}
    assert changed == {(AS_OF, "members")}
    assert 'data-delta="members">+3 (+75.0%) since last run<' in render_report(con, AS_OF)


def test_a_run_for_a_past_date_keeps_the_later_ones(con):
    set_variable(con, "as_of", date(2026, 6, 1))
    record_kpi_history(con)
    dates = con.execute("select distinct as_of_on from marts.kpi_history order by 1").fetchall()
    assert [d for (d,) in dates] == [date(2026, 6, 1), PREVIOUS_AS_OF, AS_OF]


def test_the_first_run_starts_the_history(tmp_path):
    con = connect(tmp_path / "w.duckdb", {"as_of": AS_OF})
    write_kpis(con, SNAPSHOT, MONTHLY)
    assert record_kpi_history(con) == len(SNAPSHOT)
    types = dict(
        con.execute("select column_name, column_type from (describe marts.kpi_history)").fetchall()
    )
    assert types == {
        "as_of_on": "DATE",
        "recorded_at": "TIMESTAMP",
        "kpi": "VARCHAR",
        "dimension": "VARCHAR",
        "value": "DOUBLE",
        "unit": "VARCHAR",
    }
    con.close()
