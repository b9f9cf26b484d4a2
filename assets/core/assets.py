"""Stage core: the unified customer profile, its records beside it, and every customer event."""

import dagster as dg

from assets.shared.lineage import step_reads
from assets.shared.settings import PipelineSettings
from assets.shared.sql_assets import sql_asset, table_metadata, table_spec
from assets.shared.warehouse import run_model

# core.customer_records sets each record beside the profile core.customers chose, so both
# are built in one step, in this order.
PROFILE_MODELS = ["core/customers", "core/customer_records"]


@dg.multi_asset(
    specs=[
        table_spec(
            kinds=("duckdb", "sql"),
            key=["core", "customers"],
            deps=[t.split(".") for t in step_reads(PROFILE_MODELS[:1])],
            description="One unified profile per person: survivorship per field, consent per "
            "channel, records per source, when the person joined.",
        ),
        table_spec(
            kinds=("duckdb", "sql"),
            key=["core", "customer_records"],
            deps=[t.split(".") for t in step_reads(PROFILE_MODELS)],
            description="Every customer record beside its person's profile: one person's records "
            "with select * from core.customer_records where customer_id = '...'.",
        ),
    ],
    group_name="core",
    can_subset=False,
)
def customer_profiles(context: dg.AssetExecutionContext, settings: PipelineSettings):
    """Build the unified profiles (core/customers.sql), then every record beside its profile
    (core/customer_records.sql)."""
    with settings.build(context.run_id) as con:
        run_model(con, "core/customers")
        yield dg.MaterializeResult(
            asset_key=["core", "customers"], metadata=table_metadata(con, "core.customers")
        )
        run_model(con, "core/customer_records")
        yield dg.MaterializeResult(
            asset_key=["core", "customer_records"],
            metadata=table_metadata(con, "core.customer_records"),
        )


events = sql_asset(
    "core/events",
    group="core",
    description="Every purchase, return, redemption and engagement of every channel, with its customer.",
)

consent_history = sql_asset(
    "core/consent_history",
    group="core",
    description="Every consent statement per channel ever delivered, with its source, when it "
    "was stated and the delivery it came in; which one the profile and the exports rely on.",
)
