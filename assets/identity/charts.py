"""Splink's charts as files that work offline, and links to them for Dagster's metadata.

Plain functions without Dagster: assets/identity/matching.py writes the charts with them.

Splink's chart HTML loads Vega, Vega-Lite and vega-embed from a CDN by default: without
a network (a locked-down laptop, a server behind a firewall) the page stays blank. Splink's
package ships those libraries (splink/internals/files/external_js), and `to_html(inline=True)`
puts them into the page, about 0.8 MB a chart.
"""

from __future__ import annotations

from pathlib import Path


def write_offline_chart(chart, path: Path) -> Path:
    """Write a Splink chart (a SplinkChart) as one HTML file carrying its JavaScript."""
    path.write_text(chart.to_html(inline=True), encoding="utf-8")
    return path


def file_uri(path: Path) -> str:
    """The file's absolute file:// URI, a link Dagster's UI can open whatever the working
    directory of the run (reports_dir may be relative)."""
    return path.resolve().as_uri()
