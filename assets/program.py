"""The loyalty program file: loaded, validated, and written to loyalty.program_* tables.

The SQL models read the program from those tables, so the rules live in one
place (pipelines/program.yaml by default) and marketing can change them without code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import yaml

CHANNELS = ("web", "app", "store")
DEFAULT_PROGRAM = Path(__file__).resolve().parents[1] / "pipelines" / "program.yaml"


class ProgramError(ValueError):
    """The program file breaks a rule; the message names the file and the field."""


@dataclass(frozen=True)
class Program:
    currency: str
    earn_rates: dict[str, float]
    tiers: list[tuple[str, float]]  # (name, min_qualifying_spend), ascending
    rfm_segments: list[tuple[str, tuple[int, int], tuple[int, int]]]  # (name, r range, fm range)


def load_program(path: str | Path = DEFAULT_PROGRAM) -> Program:
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProgramError(f"{path}: program file not found") from None
    except yaml.YAMLError as err:
        raise ProgramError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(doc, dict):
        raise ProgramError(f"{path}: expected a mapping at the top level")

    def fail(message: str) -> ProgramError:
        return ProgramError(f"{path}: {message}")

    rates = (doc.get("earning") or {}).get("points_per_currency_unit") or {}
    missing = [c for c in CHANNELS if c not in rates]
    if missing:
        raise fail(f"earning.points_per_currency_unit has no rate for {', '.join(missing)}")
    for channel, rate in rates.items():
        if channel not in CHANNELS:
            raise fail(f"earning.points_per_currency_unit: unknown channel {channel!r} (known: {', '.join(CHANNELS)})")
        if not isinstance(rate, (int, float)) or rate < 0:
            raise fail(f"earning.points_per_currency_unit.{channel} must be a number >= 0, got {rate!r}")

    tiers = []
    for i, tier in enumerate(doc.get("tiers") or []):
        if not isinstance(tier, dict) or "name" not in tier or "min_qualifying_spend" not in tier:
            raise fail(f"tiers[{i}] needs a name and a min_qualifying_spend")
        tiers.append((str(tier["name"]), float(tier["min_qualifying_spend"])))
    if not tiers:
        raise fail("tiers: at least one tier is required")
    if tiers[0][1] != 0:
        raise fail(f"tiers: the first tier ({tiers[0][0]}) must start at 0 so every customer has a tier")
    if any(b[1] <= a[1] for a, b in zip(tiers, tiers[1:])):
        raise fail("tiers: min_qualifying_spend must increase from one tier to the next")
    if len({name for name, _ in tiers}) != len(tiers):
        raise fail("tiers: tier names must be unique")

    segments = []
    for i, rule in enumerate(doc.get("rfm_segments") or []):
        try:
            name, r, fm = str(rule["name"]), tuple(rule["r"]), tuple(rule["fm"])
        except (KeyError, TypeError):
            raise fail(f"rfm_segments[{i}] needs a name, r: [min, max] and fm: [min, max]") from None
        for label, (low, high) in (("r", r), ("fm", fm)):
            if not (1 <= low <= high <= 5):
                raise fail(f"rfm_segments[{i}] ({name}): {label} must be [min, max] within 1-5")
        segments.append((name, r, fm))
    uncovered = [
        (r, fm)
        for r in range(1, 6)
        for fm in range(1, 6)
        if not any(rr[0] <= r <= rr[1] and ff[0] <= fm <= ff[1] for _, rr, ff in segments)
    ]
    if uncovered:
        raise fail(f"rfm_segments do not cover the (r, fm) cells {uncovered}")

    return Program(currency=str(doc.get("currency", "")), earn_rates=dict(rates), tiers=tiers, rfm_segments=segments)


def write_program_tables(con: duckdb.DuckDBPyConnection, program: Program) -> None:
    """loyalty.program_earn_rates, loyalty.program_tiers and loyalty.program_rfm_segments."""
    earn_rates = pd.DataFrame(
        {"channel": list(program.earn_rates), "points_per_unit": [float(v) for v in program.earn_rates.values()]}
    )
    tiers = pd.DataFrame(
        {
            "tier": [name for name, _ in program.tiers],
            "tier_rank": range(1, len(program.tiers) + 1),
            "min_qualifying_spend": [spend for _, spend in program.tiers],
        }
    )
    rfm = pd.DataFrame(
        {
            "segment": [name for name, _, _ in program.rfm_segments],
            "priority": range(1, len(program.rfm_segments) + 1),
            "r_min": [r[0] for _, r, _ in program.rfm_segments],
            "r_max": [r[1] for _, r, _ in program.rfm_segments],
            "fm_min": [fm[0] for _, _, fm in program.rfm_segments],
            "fm_max": [fm[1] for _, _, fm in program.rfm_segments],
        }
    )
    for table, frame in (("program_earn_rates", earn_rates), ("program_tiers", tiers), ("program_rfm_segments", rfm)):
        con.register("program_frame", frame)
        con.execute(f"create or replace table loyalty.{table} as select * from program_frame")
        con.unregister("program_frame")
