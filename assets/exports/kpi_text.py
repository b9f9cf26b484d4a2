"""What the report calls each KPI of marts.kpis, and what it means, in a manager's words.

The measures themselves are defined in assets/marts/sql/kpis.sql (with their unit); this
is only how they are shown. `better` says which way is good news, for the colour of a
change: +1 up is good, -1 down is good, 0 neither (a size, not a score). A KPI missing
here is still shown, under its name with the underscores made spaces
(tests/test_report_logic.py checks that every KPI of kpis.sql has its text).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KpiText:
    label: str
    definition: str
    better: int = 0


KPI_TEXT: dict[str, KpiText] = {
    "members": KpiText(
        "Members", "Unified customers: one per person, however many accounts and cards.", +1
    ),
    "customer_records": KpiText(
        "Customer records", "Source records (accounts, cards, contacts) matched into customers."
    ),
    "records_per_customer": KpiText("Records per customer", "Source records per unified customer."),
    "identity_match_rate": KpiText(
        "Match rate",
        "Share of a source's records whose customer also has a record in another source.",
    ),
    "active_members_30d": KpiText(
        "Active members, 30 days", "Members with a completed purchase in the last 30 days.", +1
    ),
    "active_members_90d": KpiText(
        "Active members, 90 days", "Members with a completed purchase in the last 90 days.", +1
    ),
    "retention_rate_90d": KpiText(
        "90-day retention",
        "Of the buyers of 91-180 days ago, the share who bought again in the last 90 days.",
        +1,
    ),
    "repeat_purchase_rate": KpiText(
        "Repeat purchase rate", "Share of buyers with two or more purchases.", +1
    ),
    "average_order_value_12m": KpiText(
        "Average order value", "Mean amount of a completed purchase, last 12 months.", +1
    ),
    "revenue_per_member_12m": KpiText(
        "Revenue per member",
        "Last 12 months' revenue divided by all members (by dimension: paying members, those who "
        "held a paid membership in the 12 months, against the others).",
        +1,
    ),
    "paying_members": KpiText(
        "Paying members", "Members whose paid membership runs past the as-of date (per plan).", +1
    ),
    "membership_renewal_rate": KpiText(
        "Membership renewal rate",
        "Of the paid membership periods of renewing plans that ended (grace days over) or were "
        "renewed, the share renewed.",
        +1,
    ),
    "purchase_frequency_12m": KpiText(
        "Orders per buyer", "Completed purchases per buying member, last 12 months.", +1
    ),
    "points_outstanding": KpiText(
        "Points outstanding", "Points members hold and can still redeem."
    ),
    "points_liability": KpiText(
        "Points liability",
        "What the outstanding points are worth: points outstanding x the program's point value.",
    ),
    "points_issued": KpiText(
        "Points issued", "All points ever earned: purchases, bonuses and goodwill."
    ),
    "points_redeemed": KpiText("Points redeemed", "All points ever spent on rewards."),
    "points_expired": KpiText("Points expired", "All points that expired unspent."),
    "redemption_rate": KpiText(
        "Redemption rate", "Points redeemed as a share of points issued, to date.", +1
    ),
    "breakage_rate": KpiText(
        "Breakage", "Points expired unspent as a share of points issued, to date."
    ),
    "breakage_estimate": KpiText(
        "Breakage estimate",
        "Of the points in lots past their expiry date, the share that expired unspent.",
    ),
    "deferred_revenue": KpiText(
        "Deferred revenue",
        "The liability expected to be redeemed: points liability x (1 - breakage estimate).",
    ),
    "members_per_tier": KpiText("Members per tier", "Members holding each tier."),
    "customers_per_rfm_segment": KpiText(
        "Customers per RFM segment", "Customers in each named RFM segment."
    ),
    "customers_per_lifecycle_stage": KpiText(
        "Customers per lifecycle stage", "Customers in each lifecycle stage."
    ),
    "customers_per_channel_mix": KpiText(
        "Customers per channel mix", "Customers by the channels they bought in."
    ),
    "omnichannel_share": KpiText(
        "Omnichannel buyers", "Share of buyers who bought in two or more channels.", +1
    ),
    "average_spend": KpiText(
        "Average spend", "Lifetime spend per buyer, omnichannel versus single channel."
    ),
    "revenue": KpiText("Revenue", "Completed purchases' amounts per month.", +1),
    "orders": KpiText("Orders", "Completed purchases per month.", +1),
    "average_order_value": KpiText(
        "Average order value (month)", "Mean completed purchase per month.", +1
    ),
    "active_members": KpiText(
        "Active members (month)", "Members with a completed purchase in the month.", +1
    ),
    "retention_rate": KpiText(
        "Monthly retention", "Of the previous month's buyers, the share who bought this month.", +1
    ),
    "churn_rate": KpiText(
        "Monthly churn", "Of the previous month's buyers, the share who did not buy this month.", -1
    ),
    "enrolments": KpiText("Enrolments", "New web, app and store registrations per month.", +1),
    "tier_movements": KpiText("Tier movements", "Upgrades and downgrades per month."),
    "partner_transactions": KpiText(
        "Partner sales", "Sales at a partner (per partner) up to the as-of date, matched or not."
    ),
    "partner_matched_share": KpiText(
        "Partner sales matched",
        "Share of a partner's sales whose e-mail or phone reaches exactly one member.",
        +1,
    ),
    "partner_points_issued": KpiText(
        "Partner points issued", "Points members earned on a partner's sales (rule partner)."
    ),
}


def kpi_text(kpi: str) -> KpiText:
    """The KPI's text; for a KPI not described here its name in words and no definition."""
    return KPI_TEXT.get(kpi) or KpiText(kpi.replace("_", " ").capitalize(), "")
