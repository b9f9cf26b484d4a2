"""Splink's charts work offline: the JavaScript is inside each file, and a browser cut off
from the network draws them. Links to them in Dagster's metadata are absolute file:// URIs."""

import json
import os
import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from splink.internals.html_utils import chart_html, load_chart_libraries

from assets.identity.charts import file_uri
from assets.identity.matching import match_records
from assets.identity.model import DEFAULT_MODEL
from assets.ingest.contract import source_files
from assets.ingest.deliveries import ingest_inbox
from assets.shared.warehouse import MACROS_FILE, connect, run_model
from assets.staging.standardizers import register_udfs
from pipelines.generator import generate_inbox

CHARTS = ("match_weights", "m_u_parameters", "waterfall")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def charts(tmp_path_factory) -> dict[str, Path]:
    """Splink's charts for 40 generated people, scored with the bundled model (no training)."""
    folder = tmp_path_factory.mktemp("charts")
    generate_inbox(
        people=40,
        seed=5,
        out_dir=folder / "inbox",
        truth_path=folder / "truth.csv",
        end_date=date(2026, 6, 30),
        bad_row_rate=0,
    )
    con = connect(folder / "w.duckdb", {"as_of": date(2026, 6, 30)})
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    ingest_inbox(con, folder / "inbox")
    for spec in source_files():
        run_model(con, f"staging/{spec.table}")
    for model in ("identity/record_keys", "identity/blocked_identifiers", "identity/match_input"):
        run_model(con, model)
    records = con.sql("select * from identity.match_input").to_arrow_table()
    con.close()
    result = match_records(records, model=DEFAULT_MODEL, charts_dir=folder / "identity")
    return result.charts


@pytest.mark.e2e  # the charts fixture runs ingest, staging and Splink on a generated inbox
@pytest.mark.parametrize("name", CHARTS)
def test_each_chart_carries_vega_inline_and_loads_nothing_from_the_network(charts, name):
    html = charts[name].read_text(encoding="utf-8")
    assert re.findall(r"<script[^>]*\bsrc\s*=", html, flags=re.IGNORECASE) == []
    assert "cdn.jsdelivr.net" not in html
    # The very libraries Splink's package ships, whole.
    for library, code in load_chart_libraries().items():
        assert code in html, library
    assert "vegaEmbed(" in html


def rendered_dom(path: Path, tmp_path: Path) -> str:
    """The page's DOM after headless Chromium ran its scripts, every network request sent to
    a proxy that does not exist: only what the file itself carries can run."""
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--proxy-server=http://127.0.0.1:9",
            "--virtual-time-budget=10000",
            "--dump-dom",
            path.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def drawn(dom: str) -> bool:
    """Vega drew the chart: its canvas of marks is in the page, with a size."""
    return re.search(r'<canvas width="[1-9]\d*" height="[1-9]\d*" class="marks"', dom) is not None


@pytest.mark.e2e
def test_a_browser_without_network_draws_the_chart(charts, tmp_path):
    if not Path(CHROMIUM).exists():
        # CI installs Debian's chromium (.ci/run); a developer's machine may not have it.
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip("no chromium here (apt-get install chromium)")
    assert drawn(rendered_dom(charts["match_weights"], tmp_path))
    # The same chart as Splink writes it by default, its libraries on a CDN: blank offline,
    # so the check above can tell the two apart.
    cdn = tmp_path / "cdn.html"
    cdn.write_text(chart_html(chart_spec(charts["match_weights"]), fullhtml=True), encoding="utf-8")
    assert "cdn.jsdelivr.net" in cdn.read_text(encoding="utf-8")
    assert not drawn(rendered_dom(cdn, tmp_path))


def chart_spec(path: Path) -> dict:
    """The Vega-Lite spec a chart file hands to vegaEmbed."""
    html = path.read_text(encoding="utf-8")
    found = re.search(r"vegaEmbed\(document\.getElementById\('[^']+'\), (.*), \{\}\)\.catch", html)
    return json.loads(found.group(1))


def test_links_in_the_metadata_are_absolute_file_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = file_uri(Path("data/reports/identity/2026-06-30/match_weights.html"))
    assert uri == f"file://{tmp_path}/data/reports/identity/2026-06-30/match_weights.html"
    assert file_uri(Path("a b/c.html")).endswith("/a%20b/c.html")  # quoted, so it stays one link
