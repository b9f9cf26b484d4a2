"""Stage core: the unified customer profile and every customer event across channels."""

from assets.shared.sql_assets import sql_asset

customers = sql_asset(
    "core/customers",
    deps=["identity/source_records"] + [f"staging/{t}" for t in ("web_customers", "app_users", "store_members", "callcenter_contacts")],
    group="core",
    description="One unified profile per person: survivorship per field, consent per channel, records per source.",
)

events = sql_asset(
    "core/events",
    deps=["identity/source_records", "staging/web_orders", "staging/app_events", "staging/store_transactions"],
    group="core",
    description="Every purchase, return, redemption and engagement of every channel, with its customer.",
)
