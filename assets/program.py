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
ENGAGEMENT_EVENTS = ("share", "review", "check_in")
QUALIFY_ON = ("spend", "points")
DEFAULT_PROGRAM = Path(__file__).resolve().parents[1] / "pipelines" / "program.yaml"


class ProgramError(ValueError):
    """The program file breaks a rule; the message names the file and the field."""


@dataclass(frozen=True)
class Tier:
    name: str
    threshold: float  # qualifying spend (or base points) over the window
    earn_multiplier: float


@dataclass(frozen=True)
class Program:
    currency: str
    earn_rates: dict[str, float]
    enrolment_points: int
    birthday_multiplier: float
    engagement_points: dict[str, int]
    engagement_daily_cap: int
    expiry_months: int
    qualify_on: str
    window_months: int
    downgrade_grace_months: int
    tiers: list[Tier]  # ascending thresholds, the first at 0
    rfm_segments: list[tuple[str, tuple[int, int], tuple[int, int]]]  # (name, r range, fm range)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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

    def section(name: str) -> dict:
        value = doc.get(name)
        if not isinstance(value, dict):
            raise fail(f"{name}: expected a section (a mapping), got {value!r}")
        return value

    def setting(parent: dict, where: str, key: str, *, minimum: float = 0, whole: bool = False) -> float:
        value = parent.get(key)
        if not _number(value) or value < minimum or (whole and value != int(value)):
            kind = "a whole number" if whole else "a number"
            raise fail(f"{where}.{key} must be {kind} >= {minimum:g}, got {value!r}")
        return int(value) if whole else float(value)

    earning = section("earning")
    rates = earning.get("points_per_currency_unit") or {}
    missing = [c for c in CHANNELS if c not in rates]
    if missing:
        raise fail(f"earning.points_per_currency_unit has no rate for {', '.join(missing)}")
    for channel in rates:
        if channel not in CHANNELS:
            raise fail(f"earning.points_per_currency_unit: unknown channel {channel!r} (known: {', '.join(CHANNELS)})")
        setting(rates, "earning.points_per_currency_unit", channel)

    bonuses = section("bonuses")
    engagement = bonuses.get("engagement")
    if not isinstance(engagement, dict):
        raise fail("bonuses.engagement: expected points_per_event and daily_cap")
    per_event = engagement.get("points_per_event") or {}
    for event in per_event:
        if event not in ENGAGEMENT_EVENTS:
            raise fail(f"bonuses.engagement.points_per_event: unknown event {event!r} (known: {', '.join(ENGAGEMENT_EVENTS)})")
        setting(per_event, "bonuses.engagement.points_per_event", event, whole=True)

    expiry = section("expiry")
    tiers_section = section("tiers")
    qualify_on = tiers_section.get("qualify_on")
    if qualify_on not in QUALIFY_ON:
        raise fail(f"tiers.qualify_on must be one of {', '.join(QUALIFY_ON)}, got {qualify_on!r}")

    tiers = []
    for i, level in enumerate(tiers_section.get("levels") or []):
        if not isinstance(level, dict) or "name" not in level:
            raise fail(f"tiers.levels[{i}] needs a name, a threshold and an earn_multiplier")
        where = f"tiers.levels[{i}] ({level['name']})"
        tiers.append(Tier(str(level["name"]), setting(level, where, "threshold"), setting(level, where, "earn_multiplier", minimum=1)))
    if not tiers:
        raise fail("tiers.levels: at least one tier is required")
    if tiers[0].threshold != 0:
        raise fail(f"tiers.levels: the first tier ({tiers[0].name}) must start at 0 so every customer has a tier")
    if any(b.threshold <= a.threshold for a, b in zip(tiers, tiers[1:])):
        raise fail("tiers.levels: thresholds must increase from one tier to the next")
    if len({tier.name for tier in tiers}) != len(tiers):
        raise fail("tiers.levels: tier names must be unique")

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

    return Program(
        currency=str(doc.get("currency", "")),
        earn_rates={channel: float(rate) for channel, rate in rates.items()},
        enrolment_points=setting(bonuses, "bonuses", "enrolment_points", whole=True),
        birthday_multiplier=setting(bonuses, "bonuses", "birthday_multiplier", minimum=1),
        engagement_points={event: int(points) for event, points in per_event.items()},
        engagement_daily_cap=setting(engagement, "bonuses.engagement", "daily_cap", whole=True),
        expiry_months=setting(expiry, "expiry", "months", minimum=1, whole=True),
        qualify_on=qualify_on,
        window_months=setting(tiers_section, "tiers", "window_months", minimum=1, whole=True),
        downgrade_grace_months=setting(tiers_section, "tiers", "downgrade_grace_months", whole=True),
        tiers=tiers,
        rfm_segments=segments,
    )


def write_program_tables(con: duckdb.DuckDBPyConnection, program: Program) -> None:
    """The program as loyalty.program_* tables, which the SQL models read."""
    tables = {
        "program_settings": pd.DataFrame(
            {
                "currency": [program.currency],
                "enrolment_points": [program.enrolment_points],
                "birthday_multiplier": [program.birthday_multiplier],
                "engagement_daily_cap": [program.engagement_daily_cap],
                "expiry_months": [program.expiry_months],
                "qualify_on": [program.qualify_on],
                "window_months": [program.window_months],
                "downgrade_grace_months": [program.downgrade_grace_months],
            }
        ),
        "program_earn_rates": pd.DataFrame(
            {"channel": list(program.earn_rates), "points_per_unit": list(program.earn_rates.values())}
        ),
        "program_engagement": pd.DataFrame(
            {
                "event_type": pd.Series(list(program.engagement_points), dtype="object"),
                "points": pd.Series(list(program.engagement_points.values()), dtype="int64"),
            }
        ),
        "program_tiers": pd.DataFrame(
            {
                "tier": [tier.name for tier in program.tiers],
                "tier_rank": range(1, len(program.tiers) + 1),
                "threshold": [tier.threshold for tier in program.tiers],
                "earn_multiplier": [tier.earn_multiplier for tier in program.tiers],
            }
        ),
        "program_rfm_segments": pd.DataFrame(
            {
                "segment": [name for name, _, _ in program.rfm_segments],
                "priority": range(1, len(program.rfm_segments) + 1),
                "r_min": [r[0] for _, r, _ in program.rfm_segments],
                "r_max": [r[1] for _, r, _ in program.rfm_segments],
                "fm_min": [fm[0] for _, _, fm in program.rfm_segments],
                "fm_max": [fm[1] for _, _, fm in program.rfm_segments],
            }
        ),
    }
    for table, frame in tables.items():
        con.register("program_frame", frame)
        con.execute(f"create or replace table loyalty.{table} as select * from program_frame")
        con.unregister("program_frame")


PROGRAM_TABLES = ["program_settings", "program_earn_rates", "program_engagement", "program_tiers", "program_rfm_segments"]
