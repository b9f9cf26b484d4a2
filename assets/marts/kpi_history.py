"""marts.kpi_history: every run's snapshot KPIs, kept across runs for the report's "change".

A run builds a copy of the published warehouse (assets/shared/warehouse.py), so the
history the previous run published is in the build when this step runs: the model
(sql/kpi_history.sql) reads it and adds this run's figures, replacing those of a rerun
for the same as-of date. The history lives as long as the published warehouse does: a
warehouse started from scratch starts a new history, and rolling back to a file in
previous/ brings back that version's history.
"""

from __future__ import annotations

import duckdb

from assets.shared.warehouse import run_model

# The columns of sql/kpi_history.sql, for the empty table a warehouse's first run starts from.
EMPTY_HISTORY = """
create table if not exists marts.kpi_history (
    as_of_on date, recorded_at timestamp, kpi varchar, dimension varchar, value double, unit varchar
)
"""


def record_kpi_history(con: duckdb.DuckDBPyConnection) -> int:
    """Add this run's snapshot KPIs (marts.kpis) to marts.kpi_history; returns its row count."""
    con.execute(EMPTY_HISTORY)
    return run_model(con, "marts/kpi_history")
