"""Run settings: the one Dagster resource every asset uses.

Each setting has a default for the demo layout, an OMNILOYAL_* environment
variable that overrides it (both in assets/shared/defaults.py, which the command line
reads without importing Dagster), and can be set per run in Dagster's launchpad
(resources.settings.config) or on the `omniloyal run` command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field, PrivateAttr

from assets.ingest.contract import source_priority
from assets.loyalty.program import Program, load_program
from assets.shared.defaults import DEFAULTS, check_settings, env_default, env_value  # noqa: F401  (DEFAULTS: re-exported)
from assets.shared.warehouse import MACROS_FILE, Warehouse


def _from_env(setting: str):
    """A field whose default is the setting's environment variable or built-in default."""
    return Field(default_factory=partial(env_value, setting))


class PipelineSettings(dg.ConfigurableResource):
    """Where data lives and how a run behaves."""

    # Each default is read from the environment when the resource is made (when Dagster
    # loads the definitions or a run starts), not when this module is imported, and is
    # checked as the command line checks it (assets/shared/defaults.py CHECKS).
    inbox_dir: str = _from_env("inbox_dir")
    warehouse_path: str = _from_env("warehouse_path")
    exports_dir: str = _from_env("exports_dir")
    reports_dir: str = _from_env("reports_dir")
    program_file: str = _from_env("program_file")
    as_of: str = _from_env("as_of")  # YYYY-MM-DD; empty means today (UTC)
    # Region of phones without a country code; empty: inferred from the data.
    phone_region: str = _from_env("phone_region")
    max_bad_row_share: float = _from_env("max_bad_row_share")  # a file above it fails the run
    keep_versions: int = _from_env("keep_versions")  # published versions kept for rollback
    # A saved splink_model.json to reuse; empty: train.
    identity_model: str = _from_env("identity_model")
    identity_overrides: str = _from_env(
        "identity_overrides"
    )  # stewards' decisions CSV; empty: none
    # auto (score only new and changed records when few), full (train) or rescore.
    identity_refresh: str = _from_env("identity_refresh")
    # Incremental identity up to this share of new, changed and removed records.
    incremental_max_share: float = _from_env("incremental_max_share")
    # CSV kind,pattern,reason of values never used as matching evidence.
    blocked_identifiers: str = _from_env("blocked_identifiers")
    # More people on one phone or e-mail: it is blocked.
    max_people_per_identifier: int = _from_env("max_people_per_identifier")
    export_hashes: bool = _from_env("export_hashes")  # SHA-256 ad-platform columns
    max_file_mb: int = _from_env("max_file_mb")  # a delivery larger once decompressed fails the run
    max_line_kb: int = _from_env("max_line_kb")  # a delivery with a longer line fails the run
    # Superseded raw rows, quarantine rows and previous versions older than this are purged.
    retention_days: int = _from_env("retention_days")
    # DuckDB's memory per connection (e.g. 4GB) and where it spills beyond it; empty: beside the build.
    duckdb_memory_limit: str = _from_env("duckdb_memory_limit")
    duckdb_temp_dir: str = _from_env("duckdb_temp_dir")
    # Where Splink trains and scores pairs: duckdb, or spark at spark_master (docs/scale.md).
    identity_engine: str = _from_env("identity_engine")
    spark_master: str = _from_env("spark_master")

    # The program as read at the start of the run: every asset gets this one, so marketing
    # saving the file mid-run cannot give the ledger one program and the segments another.
    _program: Program | None = PrivateAttr(default=None)
    # What the run's start removed of failed runs (pipelines/definitions.py RunSettings), for
    # the retention step to report with what it purges itself.
    _leftovers_removed: list[Path] = PrivateAttr(default_factory=list)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Read the program file once, before the first step: a broken file fails the run
        here, in one line, before any asset has started (also for runs from the UI)."""
        if context.run is not None:  # a sensor tick reads no program
            self._program = load_program(self.program_file)

    def leftovers_removed_at_start(self) -> list[Path]:
        return list(self._leftovers_removed)

    def as_of_date(self) -> date:
        if not self.as_of:
            return datetime.now(UTC).date()
        try:
            return date.fromisoformat(self.as_of)
        except ValueError:
            raise ValueError(f"as_of must be a date as YYYY-MM-DD, got {self.as_of!r}") from None

    def warehouse(self) -> Warehouse:
        return Warehouse(
            self.warehouse_path,
            keep_versions=self.keep_versions,
            retention_days=self.retention_days,
            duckdb_config=self.duckdb_config(),
        )

    def duckdb_config(self) -> dict[str, str]:
        """DuckDB's own settings for the run's connections: the memory limit and where to spill."""
        config = {"memory_limit": self.duckdb_memory_limit}
        if self.duckdb_temp_dir:
            Path(self.duckdb_temp_dir).mkdir(parents=True, exist_ok=True)
            config["temp_directory"] = self.duckdb_temp_dir
        return config

    def program(self) -> Program:
        """This run's program (read in setup_for_execution); outside a run, read on first use."""
        if self._program is None:
            self._program = load_program(self.program_file)
        return self._program

    @contextmanager
    def build(
        self, run_id: str, standardizers: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """This run's build of the warehouse, with the SQL models' variables and macros.

        With `standardizers`, the standardizing functions are registered for the SQL too,
        phones read in `phone_region`, or when it is empty in the region inferred from the
        raw tables (assets.staging.standardizers.infer_phone_region; SQL variable `phone_region`).
        """
        # Launchpad config bypasses the command line's checks: the same checks, here.
        check_settings({setting: getattr(self, setting) for setting in DEFAULTS})
        variables = {
            "as_of": self.as_of_date(),
            "source_priority": list(source_priority()),
            "blocked_identifiers_file": self.blocked_identifiers,
            "max_people_per_identifier": self.max_people_per_identifier,
        }
        with self.warehouse().build(run_id, variables) as con:
            con.execute(MACROS_FILE.read_text(encoding="utf-8"))
            if standardizers:
                # Imported here: phonenumbers and the name tables cost start-up time
                # that steps which never standardize should not pay.
                from assets.staging.standardizers import register_udfs

                register_udfs(con, self.phone_region)
            yield con
