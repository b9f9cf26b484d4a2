"""Stage core: the unified customer profile and every customer event across channels."""

from assets.shared.sql_assets import sql_asset

customers = sql_asset(
    "core/customers",
    group="core",
    description="One unified profile per person: survivorship per field, consent per channel, records per source.",
)

events = sql_asset(
    "core/events",
    group="core",
    description="Every purchase, return, redemption and engagement of every channel, with its customer.",
)
