"""Stage staging: one cleaned, standardized table per source file kind."""


from assets.contract import source_files
from assets.sql_assets import sql_asset

staging_assets = [
    sql_asset(
        f"staging/{spec.table}",
        deps=[f"raw/{spec.table}"],
        group="staging",
        description=f"{spec.description} Latest delivery of each key, standardized.",
        standardizers=True,
    )
    for spec in source_files()
]
