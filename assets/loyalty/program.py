"""The loyalty program file: loaded, validated, and written to loyalty.program_* tables.

The SQL models read the program from those tables, so the rules live in one
place (pipelines/program.yaml by default) and marketing can change them without code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from assets.shared.defaults import BUNDLED_PROGRAM

CHANNELS = ("web", "app", "store")
EXPORT_CHANNELS = ("email", "push")
CONDITION_OPS = ("=", "!=", "<", "<=", ">", ">=", "in")
LIFECYCLE_STAGES = ("new", "active", "at_risk", "lapsed")
# Tables whose documented, non-personal columns a custom segment may test.
SEGMENT_COLUMN_TABLES = ("marts.segments", "loyalty.balances")
ENGAGEMENT_EVENTS = ("share", "review", "check_in")
QUALIFY_ON = ("spend", "points")
DEFAULT_PROGRAM = BUNDLED_PROGRAM  # pipelines/program.yaml


class ProgramError(ValueError):
    """The program file breaks a rule; the message names the file and the field."""


@dataclass(frozen=True)
class Tier:
    name: str
    threshold: float  # qualifying spend (or base points) over the window
    earn_multiplier: float


@dataclass(frozen=True)
class Condition:
    column: str  # a documented, non-personal column of marts.segments or loyalty.balances
    op: str  # one of CONDITION_OPS
    value: object  # number, text, bool, or a list of them for `in`


@dataclass(frozen=True)
class CustomSegment:
    name: str
    channel: str  # email or push: the consent its export needs
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Segmentation:
    lifecycle_days: dict[str, int]  # new, active, at_risk, lapsed: increasing
    value_bands: list[tuple[str, float]]  # (name, cumulative share up to), highest value first
    engagement_levels: list[tuple[str, int]]  # (name, minimum events in 90 days), ascending from 0
    close_to_next_tier_share: float
    custom: list[CustomSegment]


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
    segmentation: Segmentation


def segment_columns() -> set[str]:
    """Columns a custom segment may test: documented in schemas/warehouse, not personal data."""
    from assets.shared.catalog import documented_tables

    tables = documented_tables()
    return {c.name for table in SEGMENT_COLUMN_TABLES for c in tables[table] if not c.pii}


def segment_file_name(segment: str) -> str:
    """'Can't Lose Them' -> 'cant_lose_them': the segment's export file name (assets/exports/segment_files.py)."""
    return re.sub(r"[^a-z0-9]+", "_", segment.lower().replace("'", "")).strip("_")


def _distinct_file_names(names: list[str], where: str, segmentation: str, fail) -> None:
    """Names that differ only by case or punctuation (VIP, vip!) would write one export file: the
    second audience would overwrite the first under the first's manifest entry."""
    seen: dict[str, str] = {}
    for name in names:
        stem = segment_file_name(name)
        if not stem:
            raise fail(f"{where}: segment name {name!r} needs a letter or digit: its export file is named after them")
        first = seen.setdefault(stem, name)
        if first != name:
            raise fail(f"{where}: segments {first!r} and {name!r} would both be exported as "
                       f"{segmentation}_{stem}.csv; rename one")


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
    _distinct_file_names([name for name, _, _ in segments], "rfm_segments", "rfm", fail)

    segmentation = _segmentation(section("segments"), fail)

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
        segmentation=segmentation,
    )


def _segmentation(doc: dict, fail) -> Segmentation:
    lifecycle = doc.get("lifecycle_days") or {}
    if set(lifecycle) != set(LIFECYCLE_STAGES) or not all(_number(v) and v > 0 and v == int(v) for v in lifecycle.values()):
        raise fail(f"segments.lifecycle_days needs whole numbers of days > 0 for {', '.join(LIFECYCLE_STAGES)}, got {lifecycle!r}")
    days = [int(lifecycle[stage]) for stage in LIFECYCLE_STAGES]
    if days != sorted(set(days)):
        raise fail(f"segments.lifecycle_days must increase from new to lapsed, got {lifecycle!r}")

    bands = []
    for i, band in enumerate(doc.get("value_bands") or []):
        share = band.get("up_to_share") if isinstance(band, dict) else None
        if not isinstance(band, dict) or "name" not in band or not _number(share) or not 0 < share <= 1:
            raise fail(f"segments.value_bands[{i}] needs a name and an up_to_share in (0, 1]")
        bands.append((str(band["name"]), float(share)))
    if not bands or bands[-1][1] != 1 or any(b[1] <= a[1] for a, b in zip(bands, bands[1:])):
        raise fail("segments.value_bands: up_to_share must increase and the last must be 1")

    levels = []
    for i, level in enumerate(doc.get("engagement_levels") or []):
        least = level.get("min_events_90d") if isinstance(level, dict) else None
        if not isinstance(level, dict) or "name" not in level or not _number(least) or least < 0 or least != int(least):
            raise fail(f"segments.engagement_levels[{i}] needs a name and a whole min_events_90d >= 0")
        levels.append((str(level["name"]), int(least)))
    if not levels or levels[0][1] != 0 or any(b[1] <= a[1] for a, b in zip(levels, levels[1:])):
        raise fail("segments.engagement_levels: min_events_90d must start at 0 and increase")

    share = doc.get("close_to_next_tier_share")
    if not _number(share) or not 0 < share < 1:
        raise fail(f"segments.close_to_next_tier_share must be a number between 0 and 1, got {share!r}")

    allowed = segment_columns()
    custom = []
    for i, spec in enumerate(doc.get("custom") or []):
        where = f"segments.custom[{i}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"].strip():
            raise fail(f"{where} needs a name")
        where = f"{where} ({spec['name']})"
        if spec.get("channel") not in EXPORT_CHANNELS:
            raise fail(f"{where}: channel must be one of {', '.join(EXPORT_CHANNELS)}, got {spec.get('channel')!r}")
        conditions = []
        for j, condition in enumerate(spec.get("where") or []):
            if not isinstance(condition, dict):
                raise fail(f"{where}.where[{j}] must be a mapping with column, op and value")
            column, op, value = condition.get("column"), condition.get("op"), condition.get("value")
            if column not in allowed:
                raise fail(f"{where}.where[{j}]: column {column!r} is not a non-personal column of "
                           f"{' or '.join(SEGMENT_COLUMN_TABLES)} (see schemas/warehouse)")
            if op not in CONDITION_OPS:
                raise fail(f"{where}.where[{j}]: op must be one of {' '.join(CONDITION_OPS)}, got {op!r}")
            values = value if op == "in" else [value]
            if op == "in" and not (isinstance(value, list) and value):
                raise fail(f"{where}.where[{j}]: `in` needs a non-empty list of values")
            if not all(isinstance(v, (str, int, float, bool)) for v in values):
                raise fail(f"{where}.where[{j}]: value must be a number, text or true/false, got {value!r}")
            conditions.append(Condition(column, op, tuple(value) if op == "in" else value))
        if not conditions:
            raise fail(f"{where} needs at least one condition under `where`")
        custom.append(CustomSegment(spec["name"].strip(), spec["channel"], tuple(conditions)))
    names = [c.name for c in custom]
    if len(set(names)) != len(names):
        raise fail("segments.custom: segment names must be unique")
    _distinct_file_names(names, "segments.custom", "custom", fail)

    return Segmentation(
        lifecycle_days=dict(zip(LIFECYCLE_STAGES, days)),
        value_bands=bands,
        engagement_levels=levels,
        close_to_next_tier_share=float(share),
        custom=custom,
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
                **{f"{stage}_days": [days] for stage, days in program.segmentation.lifecycle_days.items()},
                "close_to_next_tier_share": [program.segmentation.close_to_next_tier_share],
            }
        ),
        "program_value_bands": pd.DataFrame(
            {
                "value_band": [name for name, _ in program.segmentation.value_bands],
                "band_rank": range(1, len(program.segmentation.value_bands) + 1),
                "up_to_share": [share for _, share in program.segmentation.value_bands],
            }
        ),
        "program_engagement_levels": pd.DataFrame(
            {
                "engagement_level": [name for name, _ in program.segmentation.engagement_levels],
                "min_events_90d": [least for _, least in program.segmentation.engagement_levels],
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


PROGRAM_TABLES = [
    "program_settings", "program_earn_rates", "program_engagement", "program_tiers", "program_rfm_segments",
    "program_value_bands", "program_engagement_levels",
]
