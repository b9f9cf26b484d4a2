"""Dagster glue shared by the stage modules: an asset per SQL model, and table metadata."""

from collections.abc import Sequence

import dagster as dg
import duckdb

from assets.warehouse import row_count, run_model
from pipelines.settings import PipelineSettings


def table_metadata(con: duckdb.DuckDBPyConnection, table: str) -> dict:
    """Row count and columns of a warehouse table. No values: they may be personal data."""
    columns = [row[0] for row in con.execute(f"describe {table}").fetchall()]
    return {
        "table": dg.MetadataValue.text(table),
        "dagster/row_count": row_count(con, table),
        "columns": dg.MetadataValue.text(", ".join(columns)),
    }


def sql_asset(
    model: str,
    deps: Sequence[str],
    group: str,
    description: str,
    standardizers: bool = False,
) -> dg.AssetsDefinition:
    """An asset that builds the table of one .sql model, e.g. 'core/customers' -> core.customers."""
    schema, table = model.split("/")

    @dg.asset(
        key=[schema, table],
        deps=[dg.AssetKey(d.split("/")) for d in deps],
        group_name=group,
        description=description,
        kinds={"duckdb", "sql"},
        owners=["team:data-engineering"],
    )
    def _build(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
        with settings.build(context.run_id, standardizers=standardizers) as con:
            run_model(con, model)
            return dg.MaterializeResult(metadata=table_metadata(con, f"{schema}.{table}"))

    return _build
