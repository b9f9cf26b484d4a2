"""Every setting's environment variable and default, importable without Dagster.

assets/shared/settings.py builds the Dagster resource from these; the command line reads
them to show its defaults, and must not pay Dagster's import time to start.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

# The bundled program file (also assets.loyalty.program.DEFAULT_PROGRAM; read here without
# importing pandas, which that module does).
PIPELINES_DIR = Path(__file__).resolve().parents[2] / "pipelines"
BUNDLED_PROGRAM = PIPELINES_DIR / "program.yaml"
# Identifier values that never count as matching evidence (identity/blocked_identifiers.sql).
BUNDLED_BLOCKED_IDENTIFIERS = PIPELINES_DIR / "blocked_identifiers.csv"

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
    # auto: a run whose new, changed and removed records are at most incremental_max_share of
    # all scores only those with the saved model; full: train and score everything (the
    # weekly schedule, `omniloyal run --full-refresh`); rescore: score everything with the
    # saved model (assets/identity/incremental.py).
    "identity_refresh": ("OMNILOYAL_IDENTITY_REFRESH", "auto"),
    "incremental_max_share": ("OMNILOYAL_INCREMENTAL_MAX_SHARE", "0.10"),
    "blocked_identifiers": ("OMNILOYAL_BLOCKED_IDENTIFIERS", str(BUNDLED_BLOCKED_IDENTIFIERS)),
    "max_people_per_identifier": ("OMNILOYAL_MAX_PEOPLE_PER_IDENTIFIER", "10"),
    "export_hashes": ("OMNILOYAL_EXPORT_HASHES", "false"),
    # A delivery larger than this once decompressed, or with a longer line, fails the run
    # unread past the limit: a small .gz can expand to gigabytes (assets/ingest/deliveries.py).
    "max_file_mb": ("OMNILOYAL_MAX_FILE_MB", "2048"),
    "max_line_kb": ("OMNILOYAL_MAX_LINE_KB", "1024"),
    # Previous versions of the warehouse and raw rows no longer in use (superseded or
    # quarantined) older than this many days are purged by every run, failed builds after
    # two days or this when shorter (assets/privacy/retention.py; docs/privacy.md). Two years: points expire
    # 12 months after they are earned and tiers look back 12 months plus 3 of grace, so a
    # customer's question about a balance or a tier concerns at most 15 months of deliveries;
    # two years leaves room for a complaint raised late and a yearly audit.
    "retention_days": ("OMNILOYAL_RETENTION_DAYS", "730"),
    # Each DuckDB connection of a run (the build's; Splink's own during matching) holds at
    # most this much memory and spills the rest of a sort, join or aggregate to
    # duckdb_temp_dir: without a limit DuckDB takes up to 80% of the machine. Steps run one
    # after another, so a run's peak is about this for the build plus this for Splink.
    "duckdb_memory_limit": ("OMNILOYAL_DUCKDB_MEMORY_LIMIT", "4GB"),
    # Where DuckDB spills; empty: beside the run's build file (DuckDB's `<file>.tmp`) and,
    # for Splink's scratch database, in the warehouse's builds/ folder (a killed run's is
    # removed by the next run). A fast local disk with room.
    "duckdb_temp_dir": ("OMNILOYAL_DUCKDB_TEMP_DIR", ""),
    # Where Splink trains and scores record pairs: DuckDB on this machine, or Spark (the
    # optional extra: pip install '.[spark]') at spark_master, local[*] or a cluster's URL.
    # Everything else stays in DuckDB (assets/identity/engines.py; docs/scale.md).
    "identity_engine": ("OMNILOYAL_IDENTITY_ENGINE", "duckdb"),
    "spark_master": ("OMNILOYAL_SPARK_MASTER", "local[*]"),
}

# The values of identity_engine (assets/identity/engines.py).
ENGINES = ("duckdb", "spark")


def env_default(setting: str) -> str:
    variable, default = DEFAULTS[setting]
    return os.environ.get(variable, default)


class SettingsError(ValueError):
    """A setting with a value the pipeline cannot use; the message is one line."""


def _number_between(low: float, high: float):
    def check(text: str) -> float:
        value = float(text)
        if not low <= value <= high:
            raise ValueError
        return value

    check.expects = f"a number from {low:g} to {high:g}"
    return check


def _whole_number_from(low: int):
    def check(text: str) -> int:
        value = int(str(text).strip())
        if value < low:
            raise ValueError
        return value

    check.expects = f"a whole number of at least {low}"
    return check


def _one_of(*choices: str):
    def check(text: str) -> str:
        if text not in choices:
            raise ValueError(text)
        return text

    check.expects = "one of " + ", ".join(choices)
    return check


def _yes_or_no(text: str) -> bool:
    words = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    return words[str(text).strip().lower()]


_yes_or_no.expects = "true or false"


def _date_or_empty(text: str) -> str:
    from datetime import date

    if text:
        date.fromisoformat(text)
    return text


_date_or_empty.expects = "a date as YYYY-MM-DD, or empty for today"


def _region_or_empty(text: str) -> str:
    if text:
        import phonenumbers

        if text not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError
    return text


_region_or_empty.expects = (
    "a two-letter region such as GB or US, or empty to infer it from the data"
)


def _file(text: str) -> str:
    if not Path(text).is_file():
        raise ValueError
    return text


_file.expects = "an existing file"


def _memory_size(text: str) -> str:
    if not re.fullmatch(
        r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", text.strip(), re.IGNORECASE
    ):
        raise ValueError
    if float(re.match(r"[\d.]+", text.strip()).group()) <= 0:
        raise ValueError
    return text.strip()


_memory_size.expects = "a size such as 512MB or 4GB"


def _file_or_empty(text: str) -> str:
    return _file(text) if text else text


_file_or_empty.expects = "an existing file, or empty"


def spark_missing() -> str | None:
    """Why Spark cannot start on this machine (pyspark or Java missing), or None."""
    if importlib.util.find_spec("pyspark") is None:
        return (
            "setting identity_engine is spark, but pyspark is not installed: "
            "make install-spark (or pip install '.[spark]')"
        )
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return (
            "setting identity_engine is spark, which needs Java 17 or later: "
            "none found (install a JDK or set JAVA_HOME)"
        )
    return None


def _engine(text: str) -> str:
    if text not in ENGINES:
        raise ValueError
    if text == "spark" and (problem := spark_missing()):
        raise SettingsError(problem)
    return text


_engine.expects = " or ".join(ENGINES)


def _spark_master(text: str) -> str:
    # What Spark itself takes: local, local[N], local[*], local[N,F], spark://, yarn, k8s://.
    if not re.fullmatch(r"local(\[(\d+|\*)(,\d+)?\])?|yarn|(spark|k8s|mesos)://\S+", text):
        raise ValueError
    return text


_spark_master.expects = "a Spark master: local[*], local[N], spark://HOST:PORT, yarn or k8s://URL"

# setting -> how its value is read; settings not listed are free text (folders are created).
CHECKS = {
    "max_bad_row_share": _number_between(0, 1),
    "keep_versions": _whole_number_from(0),
    "max_people_per_identifier": _whole_number_from(2),
    "export_hashes": _yes_or_no,
    "as_of": _date_or_empty,
    "phone_region": _region_or_empty,
    "program_file": _file,
    "blocked_identifiers": _file,
    "identity_model": _file_or_empty,
    "identity_overrides": _file_or_empty,
    "identity_refresh": _one_of("auto", "full", "rescore"),
    "incremental_max_share": _number_between(0, 1),
    "max_file_mb": _whole_number_from(1),
    "max_line_kb": _whole_number_from(1),
    "retention_days": _whole_number_from(1),
    "duckdb_memory_limit": _memory_size,
    "identity_engine": _engine,
    "spark_master": _spark_master,
}


def parsed(setting: str, value: object):
    """`value` of `setting` read as its check reads it; SettingsError naming the setting and
    where it came from (its environment variable when that is what set it)."""
    check = CHECKS.get(setting)
    if check is None:
        return value
    try:
        return check(value if isinstance(value, str) else str(value))
    except SettingsError:
        raise  # a check's own message (identity_engine spark without pyspark)
    except (ValueError, KeyError):
        variable = DEFAULTS[setting][0]
        source = f" (from {variable})" if os.environ.get(variable) == str(value) else ""
        raise SettingsError(
            f"setting {setting}{source} must be {check.expects}, got {str(value)[:80]!r}"
        ) from None


def env_value(setting: str):
    """The setting's default (environment variable or built-in), read as its check reads it."""
    return parsed(setting, env_default(setting))


def check_settings(values: dict[str, object]) -> None:
    """Every setting in `values` (and every other one's default) readable, or SettingsError
    listing each problem in one line."""
    problems = []
    for setting in DEFAULTS:
        try:
            parsed(setting, values.get(setting, env_default(setting)))
        except SettingsError as err:
            problems.append(str(err))
    if problems:
        raise SettingsError("; ".join(problems))
