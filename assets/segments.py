"""Stage marts: customer segments and programme KPIs."""

from assets.sql_assets import sql_asset

segments = sql_asset(
    "marts/segments",
    deps=["core/customers", "core/events", "loyalty/program_rfm_segments"],
    group="marts",
    description="One row per customer: RFM scores and named RFM segment as of the run's date.",
)

kpis = sql_asset(
    "marts/kpis",
    deps=["core/customers", "core/events", "loyalty/balances", "loyalty/ledger", "marts/segments", "identity/source_records"],
    group="marts",
    description="Programme KPIs as a long table (kpi, period, dimension, value).",
)
