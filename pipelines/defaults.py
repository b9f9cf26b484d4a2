"""Every setting's environment variable and default, importable without Dagster.

pipelines/settings.py builds the Dagster resource from these; the command line reads
them to show its defaults, and must not pay Dagster's import time to start.
"""

from __future__ import annotations

import os
from pathlib import Path

# The bundled program file (the same file as assets.program.DEFAULT_PROGRAM, which
# imports pandas).
BUNDLED_PROGRAM = Path(__file__).resolve().parent / "program.yaml"
# Identifier values that never count as matching evidence (identity/blocked_identifiers.sql).
BUNDLED_BLOCKED_IDENTIFIERS = Path(__file__).resolve().parent / "blocked_identifiers.csv"

# setting -> (environment variable, default)
DEFAULTS = {
    "inbox_dir": ("OMNILOYAL_INBOX", "data/inbox"),
    "warehouse_path": ("OMNILOYAL_WAREHOUSE", "data/warehouse/omniloyal.duckdb"),
    "exports_dir": ("OMNILOYAL_EXPORTS", "data/exports"),
    "reports_dir": ("OMNILOYAL_REPORTS", "data/reports"),
    "program_file": ("OMNILOYAL_PROGRAM", str(BUNDLED_PROGRAM)),
    "as_of": ("OMNILOYAL_AS_OF", ""),
    "phone_region": ("OMNILOYAL_PHONE_REGION", ""),  # empty: inferred from the data
    "max_bad_row_share": ("OMNILOYAL_MAX_BAD_ROW_SHARE", "0.05"),
    "keep_versions": ("OMNILOYAL_KEEP_VERSIONS", "5"),
    "identity_model": ("OMNILOYAL_IDENTITY_MODEL", ""),
    "identity_overrides": ("OMNILOYAL_IDENTITY_OVERRIDES", ""),
    "blocked_identifiers": ("OMNILOYAL_BLOCKED_IDENTIFIERS", str(BUNDLED_BLOCKED_IDENTIFIERS)),
    "max_people_per_identifier": ("OMNILOYAL_MAX_PEOPLE_PER_IDENTIFIER", "10"),
    "export_hashes": ("OMNILOYAL_EXPORT_HASHES", "false"),
}


def env_default(setting: str) -> str:
    variable, default = DEFAULTS[setting]
    return os.environ.get(variable, default)
