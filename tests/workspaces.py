"""The `omniloyal run` arguments of a test or benchmark workspace: one folder holding the inbox,
the warehouse, the exports and the reports, as tests/conftest.py lays them out.

Imported as `workspaces` by tests (pytest puts tests/ on sys.path) and as `tests.workspaces`
by the benchmarks (run with `python -m` from the project's folder)."""

from __future__ import annotations

from pathlib import Path


def run_arguments(workspace: Path, as_of: str, inbox: Path | None = None) -> list[str]:
    """`run` and its folder options for `workspace` at `as_of` (ISO date)."""
    return [
        "run",
        "--inbox",
        str(inbox or workspace / "inbox"),
        "--warehouse",
        str(workspace / "warehouse" / "omniloyal.duckdb"),
        "--exports",
        str(workspace / "exports"),
        "--reports",
        str(workspace / "reports"),
        "--as-of",
        as_of,
    ]
