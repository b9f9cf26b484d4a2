"""Stable customer ids: this run's clusters get the ids the previous run gave their records.

The rules are SQL (identity/source_records.sql, identity/id_changes.sql); this module
only keeps the previous assignment and appends the changes to identity.id_history.
"""

from __future__ import annotations

import duckdb

from assets.identity.steward_decisions import ensure_table
from assets.shared.warehouse import run_model, table_exists

PREVIOUS = "identity.previous_source_records"


def assign_stable_ids(con: duckdb.DuckDBPyConnection) -> None:
    if table_exists(con, "identity.source_records"):
        columns = {row[0] for row in con.execute("describe identity.source_records").fetchall()}
        # Warehouses built before ids were stable have no assignment date: their ids date from
        # now; those built before it was named id_assigned_on call it customer_since.
        assigned = next(
            (c for c in ("id_assigned_on", "customer_since") if c in columns),
            "getvariable('as_of')",
        )
        con.execute(
            f"create or replace table {PREVIOUS} as "
            f"select source, source_record_id, customer_id, {assigned} as id_assigned_on from identity.source_records"
        )
    else:
        con.execute(
            f"create or replace table {PREVIOUS} (source varchar, source_record_id varchar, "
            "customer_id varchar, id_assigned_on date)"
        )
    run_model(con, "identity/source_records")
    ensure_table(con)  # a steward's change is its own reason in id_changes
    run_model(con, "identity/id_changes")
    con.execute(
        "create table if not exists identity.id_history as select * from identity.id_changes limit 0"
    )
    con.execute("insert into identity.id_history select * from identity.id_changes")
