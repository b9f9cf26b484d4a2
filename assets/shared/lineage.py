"""Lineage from the SQL: which warehouse tables a model reads, read from the model itself.

A model's inputs used to be typed twice, in its SQL and again as the deps of its Dagster
asset, and the two drifted apart; Dagster's graph (and so what a partial re-materialization
rebuilds, and in what order) was wrong wherever they differed. The SQL is what runs, so
the asset graph is derived from it (assets/shared/sql_assets.py) and
tests/test_lineage.py checks every model file against the Definitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlglot
from sqlglot import exp

from assets.shared.warehouse import ASSETS_DIR, SCHEMA_STAGES, model_sql


class LineageError(ValueError):
    """The SQL names a table whose schema cannot be told (unqualified and not a CTE)."""


def tables_read(sql: str, own_table: str | None = None) -> frozenset[str]:
    """Every `schema.table` a select reads, lower-cased, e.g. {'raw.web_orders'}.

    Not counted: CTEs (a CTE is never schema-qualified, so a CTE named like a table
    cannot be taken for it), table functions such as read_csv(...) or query_table(...)
    (their input is a file or a string, not a table of the graph) and `own_table`, the
    model's own table (a model may read what the previous run published under its name).
    An unqualified name that is not a CTE is refused: it would resolve to DuckDB's main
    schema, which the warehouse does not use, so it is a mistake the graph cannot follow.
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    read = set()
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function: read_csv(...), query_table(...), a table macro
        name = table.name.lower()
        if not table.db:
            if name in ctes:
                continue
            raise LineageError(
                f"table {table.name!r} is neither schema-qualified nor a CTE: write schema.{table.name}"
            )
        read.add(f"{table.db.lower()}.{name}")
    read.discard((own_table or "").lower())
    return frozenset(read)


def model_reads(model: str) -> frozenset[str]:
    """The tables a model such as 'core/events' reads (its own table not counted)."""
    return tables_read(model_sql(model), own_table=model.replace("/", "."))


def step_reads(models: Sequence[str], built_in_step: Iterable[str] = ()) -> list[str]:
    """What a Python step that runs `models` reads from outside itself, sorted.

    `built_in_step` are the tables the step makes on the way (its outputs, and scratch
    tables such as a copy of the previous run's ids): reading them is no input of the step.
    """
    built = {table.lower() for table in built_in_step} | {
        model.replace("/", ".") for model in models
    }
    return sorted(set().union(*(model_reads(model) for model in models)) - built)


def model_names() -> list[str]:
    """Every model file under assets/<stage>/sql/, as a model name such as 'quality/source_summary'."""
    stage_schemas = {stage: schema for schema, stage in SCHEMA_STAGES.items()}
    return sorted(
        f"{stage_schemas.get(path.parent.parent.name, path.parent.parent.name)}/{path.stem}"
        for path in ASSETS_DIR.glob("*/sql/*.sql")
    )
