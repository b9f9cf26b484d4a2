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
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

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


def validate_table(con: duckdb.DuckDBPyConnection, table: str) -> SuiteOutcome:
    """Run the table's suite over its rows; failing values come back masked."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    # GX logs progress bars and info lines per expectation; a pipeline log wants none of it.
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    spec = load_suite(table)
    frame = con.execute(f"select {_checked_columns(spec)} from {table}").df()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batch = (
        context.data_sources.add_pandas("warehouse")
        .add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("all_rows")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name=spec["name"], expectations=spec["expectations"])
    result = batch.validate(
        suite,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES_SHOWN},
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
