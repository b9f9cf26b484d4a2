"""Dagster glue shared by the stage modules: an asset per SQL model, and table metadata."""

from collections.abc import Sequence

import dagster as dg
import duckdb

from assets.ingest.deliveries import shown
from assets.shared.catalog import documented, personal_columns
from assets.shared.lineage import model_reads
from assets.shared.privacy import mask
from assets.shared.settings import PipelineSettings
from assets.shared.warehouse import model_sql, row_count, run_model

PREVIEW_ROWS = 5


def table_metadata(con: duckdb.DuckDBPyConnection, table: str) -> dict:
    """Row count, column schema and a few rows of a warehouse table, personal data masked."""
    described = con.execute(f"describe {table}").fetchall()
    columns = [row[0] for row in described]
    return {
        "table": dg.MetadataValue.text(table),
        "dagster/row_count": row_count(con, table),
        "dagster/column_schema": column_schema(table, [(row[0], row[1]) for row in described]),
        "columns": dg.MetadataValue.text(", ".join(columns)),
        "preview": dg.MetadataValue.md(preview(con, table, columns)),
    }


def column_schema(table: str, columns: list[tuple[str, str]]) -> dg.TableSchema:
    """The built columns with their DuckDB types, and each one's description and personal-data
    tag from schemas/warehouse/, for Dagster's catalog. A column schemas/ does not document
    has no description and is tagged personal, as previews treat it."""
    doc = {c.name: c for c in documented()[table].columns} if table in documented() else {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name,
                type=type_,
                description=doc[name].description if name in doc else None,
                tags={"pii": "true"} if name not in doc or doc[name].pii else None,
            )
            for name, type_ in columns
        ]
    )


def preview(con: duckdb.DuckDBPyConnection, table: str, columns: list[str]) -> str:
    """The first rows as a Markdown table; values of personal columns (schemas/) masked.

    A table schemas/ does not document is treated as all personal.
    """
    try:
        personal = personal_columns(table)
    except KeyError:
        personal = set(columns)
    rows = con.execute(f"select * from {table} limit {PREVIEW_ROWS}").fetchall()

    def cell(column: str, value: object) -> str:
        # Text such as file names is the senders' choice: control characters escaped.
        text = mask(value) if column in personal else ("null" if value is None else str(value))
        return shown(text).replace("|", "\\|")[:40]

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c, v) for c, v in zip(columns, row)) + " |" for row in rows]
    return "\n".join(lines)


def table_spec(
    key: dg.AssetKey | Sequence[str],
    description: str,
    deps: Sequence[Sequence[str]] = (),
    kinds: Sequence[str] = ("duckdb",),
    owners: Sequence[str] = ("team:data-engineering",),
) -> dg.AssetSpec:
    """The spec of one table built by a multi-asset, with the project's owners and kinds."""
    key = key if isinstance(key, dg.AssetKey) else dg.AssetKey(list(key))
    return dg.AssetSpec(
        key,
        description=description,
        deps=[list(d) for d in deps],
        kinds=set(kinds),
        owners=list(owners),
    )


def table_key(table: str) -> dg.AssetKey:
    """The asset key of a warehouse table: 'core.events' -> core/events."""
    return dg.AssetKey(table.split("."))


def sql_asset(
    model: str,
    group: str,
    description: str,
    standardizers: bool = False,
) -> dg.AssetsDefinition:
    """An asset that builds the table of one .sql model, e.g. 'core/customers' -> core.customers.

    Its deps are the tables the SQL reads (assets/shared/lineage.py), never typed by hand:
    a list kept beside the SQL drifts from it, and the graph then rebuilds in the wrong order.
    """
    schema, table = model.split("/")
    reads_phones = standardizers and "standardize_phone(" in model_sql(model)

    @dg.asset(
        key=[schema, table],
        deps=[table_key(t) for t in sorted(model_reads(model))],
        group_name=group,
        description=description,
        kinds={"duckdb", "sql"},
        owners=["team:data-engineering"],
    )
    def _build(
        context: dg.AssetExecutionContext, settings: PipelineSettings
    ) -> dg.MaterializeResult:
        with settings.build(context.run_id, standardizers=standardizers) as con:
            run_model(con, model)
            metadata = table_metadata(con, f"{schema}.{table}")
            if reads_phones:
                # The region phones without a country code were read in (settings.build set it).
                region, inferred_from = con.execute(
                    "select getvariable('phone_region'), getvariable('phone_region_inferred_from')"
                ).fetchall()[0]
                context.log.info(f"phones without a country code read as {region}: {inferred_from}")
                metadata["phone_region"] = dg.MetadataValue.text(region)
                metadata["phone_region_inferred_from"] = dg.MetadataValue.text(inferred_from)
            return dg.MaterializeResult(metadata=metadata)

    return _build
