"""The report in a real headless browser (chromium): every chart renders marks with a size,
inside the screenshot, in colour. Without chromium this fails, saying to install it.

The screenshot is kept with the test's files and copied to test-output/report-small.png;
tests/test_end_to_end.py runs the same check on a pipeline's report (test-output/report.png).
"""

from report_helpers import AS_OF, assert_every_chart_shows, hand_made_warehouse, render_in_chromium

from assets.exports.report import write_report


def test_every_chart_of_the_report_renders_in_chromium(tmp_path):
    con = hand_made_warehouse()
    try:
        report = write_report(con, tmp_path / "reports", AS_OF)
    finally:
        con.close()
    measures, pixels, screenshot = render_in_chromium(
        report, tmp_path / "browser", "report-small.png"
    )
    assert screenshot.stat().st_size > 10_000
    assert_every_chart_shows(measures, pixels)
    # The page is not blank around the charts either: text and tables take up room.
    assert (pixels.min(axis=2) < 200).mean() > 0.01
