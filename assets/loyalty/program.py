"""The loyalty program file: loaded, validated, and written to loyalty.program_* tables.

The SQL models read the program from those tables, so the rules live in one
place (pipelines/program.yaml by default) and marketing can change them without code.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import duckdb
import pandas as pd
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    field_validator,
    model_validator,
)

from assets.shared.defaults import BUNDLED_PROGRAM

CHANNELS = ("web", "app", "store")
EXPORT_CHANNELS = ("email", "push")
CONDITION_OPS = ("=", "!=", "<", "<=", ">", ">=", "in")
LIFECYCLE_STAGES = ("new", "active", "at_risk", "lapsed")
# Tables whose documented, non-personal columns a custom segment may test.
SEGMENT_COLUMN_TABLES = ("marts.segments", "loyalty.balances")
ENGAGEMENT_EVENTS = ("share", "review", "check_in")
QUALIFY_ON = ("spend", "points")
# Lifecycle stages a campaign audience may name, as marts.segments writes them.
CAMPAIGN_LIFECYCLE_STAGES = ("prospect", "new", "active", "at risk", "lapsed", "churned")
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
class MembershipPlan:
    """A paid membership plan (the program file's memberships.plans): its fee buys `months` of a
    benefit, either an earn multiplier of its own or a tier's earn multiplier."""

    name: str
    price: float  # list price in the currency; the fee paid is the order's amount
    months: int
    tier: str | None  # the tier whose earn multiplier it grants, or None
    earn_multiplier: float  # the plan's own multiplier, or the granted tier's
    renews: bool  # a fee for it right after a period is a renewal (counts in the renewal rate)
    renewal_grace_days: int  # how long after a period ends a new fee still renews it


@dataclass(frozen=True)
class Campaign:
    name: str
    starts_on: date
    ends_on: date  # inclusive
    channel: str  # email or push: the consent its export needs
    # The audience, evaluated as of starts_on on facts before it; None = no condition.
    lifecycle: tuple[str, ...] | None
    tiers: tuple[str, ...] | None
    min_spend_12m: float | None
    reward_multiplier: float | None  # exactly one of the two rewards is set
    reward_bonus_points: int | None
    budget_points: int
    cap_per_member: int
    holdout_share: float


@dataclass(frozen=True)
class Referrals:
    """Rewards for bringing in a new customer (README, "Referrals")."""

    referrer_points: int  # to the member whose code was used
    referred_points: int  # to the new customer
    qualify_within_days: (
        int  # the referred customer's first completed purchase within this of registering
    )
    yearly_cap_per_referrer: (
        int  # rewarded referrals per referrer per calendar year; beyond: capped
    )
    # A referral between two customers of one household (a shared street address or phone)
    # is rejected like a self-referral.
    household_counts_as_self: bool = False


@dataclass(frozen=True)
class Program:
    currency: str
    # What one point is worth in the currency (points liability = points outstanding x this);
    # None when the program file does not say, and then no figure is shown in currency.
    point_value: float | None
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
    # Paid membership plans; empty when the file has no memberships section (the program
    # type is off: loyalty.memberships and its rewards are empty).
    membership_plans: tuple[MembershipPlan, ...] = ()
    # Partner earning: partner name -> points per currency unit of a partner sale. Empty when
    # the program file has no `partners` section (partner earning is off).
    partner_rates: dict[str, float] = field(default_factory=dict)
    campaigns: tuple[Campaign, ...] = ()  # none when the file has no `campaigns` section
    referrals: Referrals | None = None  # None: the program has no referral rewards


def segment_columns() -> set[str]:
    """Columns a custom segment may test: documented in schemas/warehouse, not personal data."""
    from assets.shared.catalog import documented_tables

    tables = documented_tables()
    return {c.name for table in SEGMENT_COLUMN_TABLES for c in tables[table] if not c.pii}


def segment_file_name(segment: str) -> str:
    """'Can't Lose Them' -> 'cant_lose_them': the segment's export file name (assets/exports/segment_files.py)."""
    return re.sub(r"[^a-z0-9]+", "_", segment.lower().replace("'", "")).strip("_")


def _distinct_file_names(names: list[str], segmentation: str) -> None:
    """Names that differ only by case or punctuation (VIP, vip!) would write one export file: the
    second audience would overwrite the first under the first's manifest entry."""
    seen: dict[str, str] = {}
    for name in names:
        stem = segment_file_name(name)
        if not stem:
            raise ValueError(
                f"segment name {name!r} needs a letter or digit: its export file is named after them"
            )
        first = seen.setdefault(stem, name)
        if first != name:
            raise ValueError(
                f"segments {first!r} and {name!r} would both be exported as "
                f"{segmentation}_{stem}.csv; rename one"
            )


# --- The file's schema -------------------------------------------------------------------
# One pydantic model per section of the file, field names as written in it. Values are
# checked by hand-written before-validators rather than pydantic's lax coercion, so that
# the file accepted is the one the rules describe: "100" (text) is not a number, true is
# not 1, 2.0 is a whole number. A rule spanning several fields raises _At to point at the
# field it is about; load_program turns pydantic's errors into one line (_one_line).


class _At(ValueError):
    """A rule broken at `loc` below the field or model whose validator raised it."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc = loc


def _number(value: object) -> bool:
    # NaN and infinity pass every comparison test wrongly: not numbers here.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _at_least(minimum: float, *, whole: bool = False) -> BeforeValidator:
    kind = "a whole number" if whole else "a number"

    def check(value: object) -> float:
        if not _number(value) or value < minimum or (whole and value != int(value)):
            raise ValueError(f"must be {kind} >= {minimum:g}, got {value!r}")
        return int(value) if whole else float(value)

    return BeforeValidator(check)


def _positive() -> BeforeValidator:
    def check(value: object) -> float | None:
        if value is None:  # not set: liabilities are shown in points only
            return None
        if not _number(value) or value <= 0:
            raise ValueError(f"must be a number > 0, got {value!r}")
        return float(value)

    return BeforeValidator(check)


def _share(*, up_to_one: bool) -> BeforeValidator:
    def check(value: object) -> float:
        if not _number(value) or not (0 < value <= 1 if up_to_one else 0 < value < 1):
            raise ValueError(
                f"must be a number {'in (0, 1]' if up_to_one else 'between 0 and 1'}, got {value!r}"
            )
        return float(value)

    return BeforeValidator(check)


def _one_of(choices: tuple[str, ...], separator: str = ", ") -> BeforeValidator:
    def check(value: object) -> object:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"must be one of {separator.join(choices)}, got {value!r}")
        return value

    return BeforeValidator(check)


def _score_range(value: object) -> tuple:
    if not (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(map(_number, value))
        and 1 <= value[0] <= value[1] <= 5
    ):
        raise ValueError(f"must be [min, max] within 1-5, got {value!r}")
    return tuple(value)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty text, got {value!r}")
    return value.strip()


def _segment_column(value: object) -> str:
    if not isinstance(value, str) or value not in segment_columns():
        raise ValueError(
            f"{value!r} is not a non-personal column of {' or '.join(SEGMENT_COLUMN_TABLES)} "
            "(see schemas/warehouse)"
        )
    return value


_NONE_IS_EMPTY_MAP = BeforeValidator(lambda value: {} if value is None else value)
_NONE_IS_EMPTY_LIST = BeforeValidator(lambda value: [] if value is None else value)
# A name as written: YAML reads `2026` or `yes` as a number or a boolean; they name a tier as text.
Name = Annotated[str, BeforeValidator(lambda value: str(value))]
Rate = Annotated[float, _at_least(0)]
Multiplier = Annotated[float, _at_least(1)]
Count = Annotated[int, _at_least(0, whole=True)]
Months = Annotated[int, _at_least(1, whole=True)]
Days = Annotated[int, _at_least(1, whole=True)]


class _Section(BaseModel):
    # Keys the rules do not name are ignored, as before the schema: a file with a note of its
    # own still loads. A misspelt required key is reported missing. Defaults are validated:
    # an absent list or mapping (no tiers, no rates) must meet the same rules as an empty one.
    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)


class EarningFile(_Section):
    points_per_currency_unit: Annotated[dict[str, Rate], _NONE_IS_EMPTY_MAP] = {}

    @field_validator("points_per_currency_unit")
    @classmethod
    def _every_channel_once(cls, rates: dict[str, float]) -> dict[str, float]:
        missing = [channel for channel in CHANNELS if channel not in rates]
        if missing:
            raise ValueError(f"has no rate for {', '.join(missing)}")
        for channel in rates:
            if channel not in CHANNELS:
                raise ValueError(f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})")
        return rates


class EngagementFile(_Section):
    points_per_event: Annotated[dict[str, Count], _NONE_IS_EMPTY_MAP] = {}
    daily_cap: Count

    @field_validator("points_per_event")
    @classmethod
    def _known_events(cls, points: dict[str, int]) -> dict[str, int]:
        for event in points:
            if event not in ENGAGEMENT_EVENTS:
                raise ValueError(f"unknown event {event!r} (known: {', '.join(ENGAGEMENT_EVENTS)})")
        return points


class BonusesFile(_Section):
    enrolment_points: Count
    birthday_multiplier: Multiplier
    engagement: EngagementFile


class ExpiryFile(_Section):
    months: Months


class TierFile(_Section):
    name: Name
    threshold: Rate
    earn_multiplier: Multiplier


class TiersFile(_Section):
    qualify_on: Annotated[str, _one_of(QUALIFY_ON)]
    window_months: Months
    downgrade_grace_months: Count
    levels: Annotated[list[TierFile], _NONE_IS_EMPTY_LIST] = []

    @field_validator("levels")
    @classmethod
    def _ascending_from_zero(cls, levels: list[TierFile]) -> list[TierFile]:
        if not levels:
            raise ValueError("at least one tier is required")
        if levels[0].threshold != 0:
            raise ValueError(
                f"the first tier ({levels[0].name}) must start at 0 so every customer has a tier"
            )
        for i, (lower, tier) in enumerate(zip(levels, levels[1:]), start=1):
            if tier.threshold <= lower.threshold:
                raise _At(
                    (i, "threshold"),
                    f"must be greater than tiers.levels[{i - 1}].threshold "
                    f"({lower.name}, {lower.threshold:g})",
                )
        first: dict[str, int] = {}
        for i, tier in enumerate(levels):
            if first.setdefault(tier.name, i) != i:
                raise _At(
                    (i, "name"),
                    f"tier names must be unique: {tier.name!r} is also tiers.levels[{first[tier.name]}]",
                )
        return levels


class RfmRuleFile(_Section):
    name: Name
    r: Annotated[tuple, BeforeValidator(_score_range)]
    fm: Annotated[tuple, BeforeValidator(_score_range)]


def _rfm_rules_cover_every_cell(rules: list[RfmRuleFile]) -> list[RfmRuleFile]:
    uncovered = [
        (r, fm)
        for r in range(1, 6)
        for fm in range(1, 6)
        if not any(rule.r[0] <= r <= rule.r[1] and rule.fm[0] <= fm <= rule.fm[1] for rule in rules)
    ]
    if uncovered:
        raise ValueError(f"do not cover the (r, fm) cells {uncovered}")
    _distinct_file_names([rule.name for rule in rules], "rfm")
    return rules


class LifecycleDaysFile(_Section):
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True
    )  # a stage the SQL does not know is a mistake
    new: Days
    active: Days
    at_risk: Days
    lapsed: Days

    @model_validator(mode="after")
    def _increasing(self) -> LifecycleDaysFile:
        days = [getattr(self, stage) for stage in LIFECYCLE_STAGES]
        if days != sorted(set(days)):
            raise ValueError(
                f"must increase from new to lapsed, got {dict(zip(LIFECYCLE_STAGES, days))}"
            )
        return self


class ValueBandFile(_Section):
    name: Name
    up_to_share: Annotated[float, _share(up_to_one=True)]


class EngagementLevelFile(_Section):
    name: Name
    min_events_90d: Count


class ConditionFile(_Section):
    column: Annotated[str, BeforeValidator(_segment_column)]
    op: Annotated[str, _one_of(CONDITION_OPS, " ")]
    value: Any = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> ConditionFile:
        if self.op == "in" and not (isinstance(self.value, list) and self.value):
            raise _At(("value",), "`in` needs a non-empty list of values")
        values = self.value if self.op == "in" else [self.value]
        if not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise _At(("value",), f"must be a number, text or true/false, got {self.value!r}")
        return self


class CustomSegmentFile(_Section):
    name: Annotated[str, BeforeValidator(_text)]
    channel: Annotated[str, _one_of(EXPORT_CHANNELS)]
    where: Annotated[list[ConditionFile], _NONE_IS_EMPTY_LIST] = []

    @field_validator("where")
    @classmethod
    def _some_condition(cls, where: list[ConditionFile]) -> list[ConditionFile]:
        if not where:
            raise ValueError("needs at least one condition")
        return where


class SegmentsFile(_Section):
    lifecycle_days: LifecycleDaysFile
    value_bands: Annotated[list[ValueBandFile], _NONE_IS_EMPTY_LIST] = []
    engagement_levels: Annotated[list[EngagementLevelFile], _NONE_IS_EMPTY_LIST] = []
    close_to_next_tier_share: Annotated[float, _share(up_to_one=False)]
    custom: Annotated[list[CustomSegmentFile], _NONE_IS_EMPTY_LIST] = []

    @field_validator("value_bands")
    @classmethod
    def _bands_reach_one(cls, bands: list[ValueBandFile]) -> list[ValueBandFile]:
        shares = [band.up_to_share for band in bands]
        if not shares or shares[-1] != 1 or any(b <= a for a, b in zip(shares, shares[1:])):
            raise ValueError("up_to_share must increase and the last must be 1")
        return bands

    @field_validator("engagement_levels")
    @classmethod
    def _levels_from_zero(cls, levels: list[EngagementLevelFile]) -> list[EngagementLevelFile]:
        least = [level.min_events_90d for level in levels]
        if not least or least[0] != 0 or any(b <= a for a, b in zip(least, least[1:])):
            raise ValueError("min_events_90d must start at 0 and increase")
        return levels

    @field_validator("custom")
    @classmethod
    def _distinct_names(cls, custom: list[CustomSegmentFile]) -> list[CustomSegmentFile]:
        first: dict[str, int] = {}
        for i, spec in enumerate(custom):
            if first.setdefault(spec.name, i) != i:
                raise _At(
                    (i, "name"),
                    f"segment names must be unique: {spec.name!r} is also segments.custom[{first[spec.name]}]",
                )
        _distinct_file_names([spec.name for spec in custom], "custom")
        return custom


def _optional_multiplier(value: object) -> float | None:
    if value is None:
        return None
    if not _number(value) or value < 1:
        raise ValueError(f"must be a number >= 1, got {value!r}")
    return float(value)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


class MembershipPlanFile(_Section):
    name: Annotated[str, BeforeValidator(_text)]
    price: Rate
    months: Months
    # Exactly one of the two: the plan's own multiplier, or a tier whose multiplier it grants.
    tier: Annotated[
        str | None, BeforeValidator(lambda value: None if value is None else str(value))
    ] = None
    earn_multiplier: Annotated[float | None, BeforeValidator(_optional_multiplier)] = None
    renews: Annotated[bool, BeforeValidator(_flag)]
    renewal_grace_days: Annotated[int, _at_least(0, whole=True)] = 7

    @model_validator(mode="after")
    def _one_benefit(self) -> MembershipPlanFile:
        if (self.tier is None) == (self.earn_multiplier is None):
            raise ValueError("needs exactly one of tier and earn_multiplier")
        return self


class MembershipsFile(_Section):
    plans: Annotated[list[MembershipPlanFile], _NONE_IS_EMPTY_LIST] = []

    @field_validator("plans")
    @classmethod
    def _named_once(cls, plans: list[MembershipPlanFile]) -> list[MembershipPlanFile]:
        if not plans:
            raise ValueError(
                "needs at least one plan (leave the memberships section out to turn it off)"
            )
        first: dict[str, int] = {}
        for i, plan in enumerate(plans):
            if first.setdefault(plan.name, i) != i:
                raise _At(
                    (i, "name"),
                    f"plan names must be unique: {plan.name!r} is also memberships.plans[{first[plan.name]}]",
                )
        return plans


class PartnerFile(_Section):
    name: Annotated[str, BeforeValidator(_text)]
    points_per_currency_unit: Rate


def _distinct_partners(partners: list[PartnerFile]) -> list[PartnerFile]:
    first: dict[str, int] = {}
    for i, partner in enumerate(partners):
        if first.setdefault(partner.name, i) != i:
            raise _At(
                (i, "name"),
                f"partner names must be unique: {partner.name!r} is also partners[{first[partner.name]}]",
            )
    return partners


def _date(value: object) -> date:
    # YAML reads 2026-03-01 as a date already; a quoted one arrives as text.
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"must be a date (YYYY-MM-DD), got {value!r}")


def _audience(value: object) -> object:
    # `all` (or nothing) is every member registered before the start.
    return {} if value in ("all", None) else value


class CampaignAudienceFile(_Section):
    # A condition nobody asked for is a mistake: the audience must be what the file says.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    lifecycle: list[Annotated[str, _one_of(CAMPAIGN_LIFECYCLE_STAGES)]] | None = None
    tier: list[Name] | None = None
    min_spend_12m: Annotated[float, _at_least(0)] | None = None

    @model_validator(mode="after")
    def _non_empty_lists(self) -> CampaignAudienceFile:
        for key in ("lifecycle", "tier"):
            if getattr(self, key) == []:
                raise _At((key,), "needs at least one value (leave the key out for any)")
        return self


class CampaignRewardFile(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    multiplier: Annotated[float, _at_least(1)] | None = None
    bonus_points: Annotated[int, _at_least(1, whole=True)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CampaignRewardFile:
        if (self.multiplier is None) == (self.bonus_points is None):
            raise ValueError("needs exactly one of multiplier or bonus_points")
        return self


class CampaignFile(_Section):
    name: Annotated[str, BeforeValidator(_text)]
    starts_on: Annotated[date, BeforeValidator(_date)]
    ends_on: Annotated[date, BeforeValidator(_date)]
    audience: Annotated[CampaignAudienceFile, BeforeValidator(_audience)] = CampaignAudienceFile()
    channel: Annotated[str, _one_of(EXPORT_CHANNELS)]
    reward: CampaignRewardFile
    budget_points: Count
    cap_per_member: Count
    holdout_share: Annotated[float, _share(up_to_one=False)]

    @model_validator(mode="after")
    def _period(self) -> CampaignFile:
        if self.ends_on < self.starts_on:
            raise _At(("ends_on",), f"must not be before starts_on ({self.starts_on})")
        return self


def _distinct_campaigns(campaigns: list[CampaignFile]) -> list[CampaignFile]:
    first: dict[str, int] = {}
    for i, campaign in enumerate(campaigns):
        if first.setdefault(campaign.name, i) != i:
            raise _At(
                (i, "name"),
                f"campaign names must be unique: {campaign.name!r} is also campaigns[{first[campaign.name]}]",
            )
    _distinct_file_names([campaign.name for campaign in campaigns], "campaign")
    return campaigns


class ReferralsFile(_Section):
    referrer_points: Count
    referred_points: Count
    qualify_within_days: Days
    yearly_cap_per_referrer: Annotated[int, _at_least(1, whole=True)]
    household_counts_as_self: Annotated[bool, BeforeValidator(_flag)] = False


class ProgramFile(_Section):
    """The program file as written; load_program turns it into a Program."""

    currency: Annotated[str, BeforeValidator(lambda value: str(value))] = ""
    point_value: Annotated[float | None, _positive()] = None
    earning: EarningFile
    bonuses: BonusesFile
    expiry: ExpiryFile
    tiers: TiersFile
    rfm_segments: Annotated[
        list[RfmRuleFile], _NONE_IS_EMPTY_LIST, AfterValidator(_rfm_rules_cover_every_cell)
    ]
    segments: SegmentsFile
    memberships: MembershipsFile | None = None  # left out: no paid membership

    @model_validator(mode="after")
    def _plan_tiers_exist(self) -> ProgramFile:
        tiers = [tier.name for tier in self.tiers.levels]
        for i, plan in enumerate(self.memberships.plans if self.memberships else []):
            if plan.tier is not None and plan.tier not in tiers:
                raise _At(
                    ("memberships", "plans", i, "tier"),
                    f"must be one of the tiers ({', '.join(tiers)}), got {plan.tier!r}",
                )
        return self

    def membership_plans(self) -> tuple[MembershipPlan, ...]:
        multiplier_of = {tier.name: tier.earn_multiplier for tier in self.tiers.levels}
        return tuple(
            MembershipPlan(
                name=plan.name,
                price=plan.price,
                months=plan.months,
                tier=plan.tier,
                earn_multiplier=(
                    multiplier_of[plan.tier] if plan.tier is not None else plan.earn_multiplier
                ),
                renews=plan.renews,
                renewal_grace_days=plan.renewal_grace_days,
            )
            for plan in (self.memberships.plans if self.memberships else [])
        )

    # Optional: left out (or empty), partner earning is off and every partner row is unmatched.
    partners: Annotated[
        list[PartnerFile], _NONE_IS_EMPTY_LIST, AfterValidator(_distinct_partners)
    ] = []
    campaigns: Annotated[
        list[CampaignFile], _NONE_IS_EMPTY_LIST, AfterValidator(_distinct_campaigns)
    ] = []

    @model_validator(mode="after")
    def _campaign_tiers_exist(self) -> ProgramFile:
        known = [tier.name for tier in self.tiers.levels]
        for i, campaign in enumerate(self.campaigns):
            for tier in campaign.audience.tier or []:
                if tier not in known:
                    raise _At(
                        ("campaigns", i, "audience", "tier"),
                        f"names no tier of tiers.levels: {tier!r} (known: {', '.join(known)})",
                    )
        return self

    referrals: ReferralsFile | None = None  # left out: no referral rewards

    def program(self) -> Program:
        segments = self.segments
        return Program(
            currency=self.currency,
            point_value=self.point_value,
            earn_rates=dict(self.earning.points_per_currency_unit),
            enrolment_points=self.bonuses.enrolment_points,
            birthday_multiplier=self.bonuses.birthday_multiplier,
            engagement_points=dict(self.bonuses.engagement.points_per_event),
            engagement_daily_cap=self.bonuses.engagement.daily_cap,
            expiry_months=self.expiry.months,
            qualify_on=self.tiers.qualify_on,
            window_months=self.tiers.window_months,
            downgrade_grace_months=self.tiers.downgrade_grace_months,
            tiers=[
                Tier(tier.name, tier.threshold, tier.earn_multiplier) for tier in self.tiers.levels
            ],
            rfm_segments=[(rule.name, rule.r, rule.fm) for rule in self.rfm_segments],
            segmentation=Segmentation(
                lifecycle_days={
                    stage: getattr(segments.lifecycle_days, stage) for stage in LIFECYCLE_STAGES
                },
                value_bands=[(band.name, band.up_to_share) for band in segments.value_bands],
                engagement_levels=[
                    (level.name, level.min_events_90d) for level in segments.engagement_levels
                ],
                close_to_next_tier_share=segments.close_to_next_tier_share,
                custom=[
                    CustomSegment(
                        spec.name,
                        spec.channel,
                        tuple(
                            Condition(c.column, c.op, tuple(c.value) if c.op == "in" else c.value)
                            for c in spec.where
                        ),
                    )
                    for spec in segments.custom
                ],
            ),
            membership_plans=self.membership_plans(),
            partner_rates={p.name: p.points_per_currency_unit for p in self.partners},
            campaigns=tuple(
                Campaign(
                    name=c.name,
                    starts_on=c.starts_on,
                    ends_on=c.ends_on,
                    channel=c.channel,
                    lifecycle=None if c.audience.lifecycle is None else tuple(c.audience.lifecycle),
                    tiers=None if c.audience.tier is None else tuple(c.audience.tier),
                    min_spend_12m=c.audience.min_spend_12m,
                    reward_multiplier=c.reward.multiplier,
                    reward_bonus_points=c.reward.bonus_points,
                    budget_points=c.budget_points,
                    cap_per_member=c.cap_per_member,
                    holdout_share=c.holdout_share,
                )
                for c in self.campaigns
            ),
            referrals=Referrals(**self.referrals.model_dump()) if self.referrals else None,
        )


def _where(doc: object, loc: tuple) -> str:
    """('tiers', 'levels', 1, 'threshold') -> 'tiers.levels[1] (Gold).threshold': the field's
    path in the file, a list item followed by its name when it has one."""
    path, node = "", doc
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and "name" in node:
                path += f" ({node['name']})"
        else:
            path += f".{part}" if path else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return path


def _one_line(doc: object, error: dict) -> str:
    """A pydantic error as `field.path must ...` or `field.path: problem`."""
    loc, kind, given = tuple(error["loc"]), error["type"], repr(error.get("input"))[:80]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ValueError):  # the rules' own messages, raised by the validators above
        message = str(cause)
        loc += getattr(cause, "loc", ())
    elif kind == "missing":
        message = "is missing"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"expected a {'section (a mapping)' if len(loc) == 1 else 'mapping'}, got {given}"
    elif kind == "list_type":
        message = f"expected a list, got {given}"
    elif kind == "extra_forbidden":
        message = "is not a setting of this section"
    else:
        message = f"{error['msg'][:1].lower()}{error['msg'][1:]}, got {given}"
    loc = tuple(part for part in loc if part != "[key]")  # a dict key's own error: the key's path
    joint = " " if message.startswith(("must ", "needs ", "has ", "is ", "do ")) else ": "
    return f"{_where(doc, loc)}{joint}{message}"


def load_program(path: str | Path = DEFAULT_PROGRAM) -> Program:
    """The program file, checked against every rule; ProgramError names the file, the field
    path and the problem in one line (the first problem, in the file's order)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProgramError(f"{path}: program file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProgramError(f"{path}: cannot be read ({err})") from None
    except yaml.YAMLError as err:
        # PyYAML's message spans lines (the problem, then a marked excerpt): one line of it.
        raise ProgramError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    except ValueError as err:
        # YAML reads an unquoted 2026-13-01 as a date and fails outside its own errors.
        raise ProgramError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(doc, dict):
        raise ProgramError(f"{path}: expected a mapping at the top level")
    try:
        return ProgramFile.model_validate(doc).program()
    except ValidationError as err:
        raise ProgramError(f"{path}: {_one_line(doc, err.errors(include_url=False)[0])}") from None


def write_program_tables(con: duckdb.DuckDBPyConnection, program: Program) -> None:
    """The program as loyalty.program_* tables, which the SQL models read."""
    tables = {
        "program_settings": pd.DataFrame(
            {
                "currency": [program.currency],
                # Nullable: a program without point_value has null here (and no liability in currency).
                "point_value": pd.array([program.point_value], dtype="Float64"),
                "enrolment_points": [program.enrolment_points],
                "birthday_multiplier": [program.birthday_multiplier],
                "engagement_daily_cap": [program.engagement_daily_cap],
                "expiry_months": [program.expiry_months],
                "qualify_on": [program.qualify_on],
                "window_months": [program.window_months],
                "downgrade_grace_months": [program.downgrade_grace_months],
                **{
                    f"{stage}_days": [days]
                    for stage, days in program.segmentation.lifecycle_days.items()
                },
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
            {
                "channel": list(program.earn_rates),
                "points_per_unit": list(program.earn_rates.values()),
            }
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
        "program_partners": pd.DataFrame(
            {
                "partner": pd.Series(list(program.partner_rates), dtype="object"),
                "points_per_unit": pd.Series(list(program.partner_rates.values()), dtype="float64"),
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
        "program_membership_plans": membership_plans_frame(program),
        "program_referrals": _referrals_frame(program.referrals),
    }
    for table, frame in tables.items():
        con.register("program_frame", frame)
        con.execute(f"create or replace table loyalty.{table} as select * from program_frame")
        con.unregister("program_frame")
    write_campaigns_table(con, program)


def write_campaigns_table(con: duckdb.DuckDBPyConnection, program: Program) -> None:
    """loyalty.program_campaigns: one row per campaign, typed even when there is none (a
    program without campaigns has the table, empty, so the campaign models still run)."""
    con.execute(
        """
        create or replace table loyalty.program_campaigns (
            campaign varchar, channel varchar, starts_on date, ends_on date,
            audience_lifecycle varchar[], audience_tiers varchar[], audience_min_spend_12m double,
            reward_multiplier double, reward_bonus_points bigint,
            budget_points bigint, cap_per_member bigint, holdout_share double)
        """
    )
    if not program.campaigns:
        return
    con.executemany(
        "insert into loyalty.program_campaigns values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                c.name,
                c.channel,
                c.starts_on,
                c.ends_on,
                None if c.lifecycle is None else list(c.lifecycle),
                None if c.tiers is None else list(c.tiers),
                c.min_spend_12m,
                c.reward_multiplier,
                c.reward_bonus_points,
                c.budget_points,
                c.cap_per_member,
                c.holdout_share,
            ]
            for c in program.campaigns
        ],
    )


def membership_plans_frame(program: Program) -> pd.DataFrame:
    """loyalty.program_membership_plans: typed columns even when there is no plan (the section
    left out), so the membership models run and come out empty."""
    plans = program.membership_plans
    return pd.DataFrame(
        {
            "plan": pd.Series([p.name for p in plans], dtype="object"),
            "price": pd.Series([p.price for p in plans], dtype="float64"),
            "months": pd.Series([p.months for p in plans], dtype="int64"),
            "granted_tier": pd.Series([p.tier for p in plans], dtype="object"),
            "earn_multiplier": pd.Series([p.earn_multiplier for p in plans], dtype="float64"),
            "is_tier_grant": pd.Series([p.tier is not None for p in plans], dtype="bool"),
            "renews": pd.Series([p.renews for p in plans], dtype="bool"),
            "renewal_grace_days": pd.Series([p.renewal_grace_days for p in plans], dtype="int64"),
        }
    )


def _referrals_frame(referrals: Referrals | None) -> pd.DataFrame:
    """One row of referral rules, or none when the program has no referrals (and then
    loyalty.referrals and loyalty.referral_rewards are empty)."""
    rows = [referrals] if referrals else []
    return pd.DataFrame(
        {
            field: pd.Series(
                [getattr(r, field) for r in rows],
                dtype="bool" if field == "household_counts_as_self" else "int64",
            )
            for field in Referrals.__dataclass_fields__
        }
    )


PROGRAM_TABLES = [
    "program_settings",
    "program_earn_rates",
    "program_engagement",
    "program_tiers",
    "program_rfm_segments",
    "program_value_bands",
    "program_engagement_levels",
    "program_membership_plans",
    "program_partners",
    "program_campaigns",
    "program_referrals",
]
