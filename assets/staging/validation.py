"""Data-quality gates: the Great Expectations suites of expectations/ run against warehouse tables.

Each suite is a JSON file named after the table it checks (expectations/staging.web_customers.json).
An expectation's `severity` decides what a failure does: `critical` blocks publishing,
`warning` is reported. Great Expectations is imported on first use: its import costs
seconds that steps which do not validate should not pay.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from assets.ingest.contract import PROJECT_ROOT
from assets.shared.catalog import personal_columns
from assets.shared.privacy import mask

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
EXAMPLES_SHOWN = 5


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int
    unexpected_percent: float
    examples: list[str]  # failing values; masked in columns holding personal data


@dataclass
class SuiteOutcome:
    table: str
    rows: int
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "critical"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "critical"]


def suite_path(table: str) -> Path:
    return EXPECTATIONS_DIR / f"{table}.json"


def load_suite(table: str) -> dict:
    path = suite_path(table)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no expectation suite for {table}") from None


def _checked_columns(spec: dict) -> str:
    """The select list of the columns the suite's expectations name, or * when one of them
    looks at the whole table. GX validates a pandas frame in memory: at a million people the
    app's events are 5.5M rows, and the columns nobody checks were most of their size."""
    columns = []
    for expectation in spec["expectations"]:
        column = expectation.get("kwargs", {}).get("column")
        if column is None:
            return "*"
        if column not in columns:
            columns.append(column)
    return ", ".join(f'"{column}"' for column in columns) or "*"


def suite_frame(con: duckdb.DuckDBPyConnection, table: str, columns: str) -> pd.DataFrame:
    """The pandas frame GX validates: the same frame DuckDB's `.df()` gives, built faster.

    `.df()` spends most of its time turning millions of strings into pandas strings one by
    one; text columns come through Arrow instead, whose pandas strings are the same values
    in the same dtype. Every other column, and a text column holding no value at all (which
    `.df()` makes an object column of None), still comes from `.df()`, whose dtypes depend
    on the data (BIGINT with a null is Int64, without one int64; DECIMAL is float64).
    Both queries scan the table in its stored order, so the rows line up.
    """
    relation = con.sql(f"select {columns} from {table}")
    names = relation.columns
    text = [name for name, type_ in zip(names, relation.types) if str(type_) == "VARCHAR"]
    parts = []
    if text:
        arrow = con.sql(f"select {_quoted(text)} from {table}").to_arrow_table()
        filled = [name for name in text if arrow.column(name).null_count < arrow.num_rows]
        if filled:
            parts.append(arrow.select(filled).to_pandas())
    rest = [name for name in names if not any(name in part.columns for part in parts)]
    if rest:
        parts.append(con.sql(f"select {_quoted(rest)} from {table}").df())
    return pd.concat(parts, axis=1)[names] if len(parts) > 1 else parts[0][names]


def _quoted(columns: list[str]) -> str:
    return ", ".join(f'"{column}"' for column in columns)


@contextmanager
def _without_batch_fingerprint() -> Iterator[None]:
    """GX fingerprints every in-memory batch under 1 GB (an md5 over pandas' hash of every
    row; pandas_execution_engine.HASH_THRESHOLD) for the result's batch markers, which
    nothing here reads: at 5.5M rows it cost more than all the suite's expectations. A
    threshold of 0 skips it; validation itself is untouched."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    saved = getattr(engine, "HASH_THRESHOLD", None)
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = saved


def validate_table(con: duckdb.DuckDBPyConnection, table: str) -> SuiteOutcome:
    """Run the table's suite over its rows; failing values come back masked."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    # GX logs progress bars and info lines per expectation; a pipeline log wants none of it.
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    spec = load_suite(table)
    frame = suite_frame(con, table, _checked_columns(spec))
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batch_definition = (
        context.data_sources.add_pandas("warehouse")
        .add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("all_rows")
    )
    suite = context.suites.add(
        gx.ExpectationSuite(name=spec["name"], expectations=spec["expectations"])
    )
    # A validation definition loads the batch once (batch.validate loaded it a second time).
    # BASIC gives the counts and the first failing values; SUMMARY only added value counts
    # and row indexes of the failures, which nothing here shows.
    validation = gx.ValidationDefinition(name=table, data=batch_definition, suite=suite)
    with _without_batch_fingerprint():
        result = validation.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "BASIC", "partial_unexpected_count": EXAMPLES_SHOWN},
        )
    outcome = SuiteOutcome(table=table, rows=len(frame))
    personal = personal_columns(table)
    for item in result.results:
        config = item.expectation_config
        details = item.result or {}
        column = config.kwargs.get("column")
        shown = mask if column in personal or column is None else str
        outcome.outcomes.append(
            ExpectationOutcome(
                expectation=config.type,
                column=column,
                severity=str(getattr(config.severity, "value", config.severity)),
                success=bool(item.success),
                unexpected_count=int(details.get("unexpected_count") or 0),
                unexpected_percent=float(details.get("unexpected_percent") or 0.0),
                examples=[
                    shown(v)
                    for v in (details.get("partial_unexpected_list") or [])[:EXAMPLES_SHOWN]
                ],
            )
        )
    return outcome
