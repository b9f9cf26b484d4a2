"""The summary `omniloyal run` prints after a successful run, read from the published warehouse."""

from __future__ import annotations

from pathlib import Path

from assets.shared.warehouse import connect


def print_summary(
    warehouse_path: Path,
    exports_folder: Path,
    elapsed_s: float,
    report: Path | None = None,
    new_deliveries: int | None = None,
) -> None:
    con = connect(warehouse_path, read_only=True)
    try:

        def rows(sql: str) -> list[tuple]:
            return con.execute(sql).fetchall()

        print(f"omniloyal run finished in {elapsed_s:.1f} s")
        if new_deliveries == 0:
            print(
                "no new delivery in the inbox: every table rebuilt from what earlier runs ingested"
            )
        elif new_deliveries is not None:
            print(f"{new_deliveries:,} new deliveries ingested")
        print("\nrecords read per source (all deliveries)")
        for source, read, loaded, quarantined in rows(
            "select source, sum(rows_read), sum(rows_loaded), sum(rows_quarantined) from raw.deliveries group by 1 order by 1"
        ):
            print(
                f"  {source:<12} {read:>9,} read  {loaded:>9,} loaded  {quarantined:>6,} quarantined"
            )
        customers, records = rows(
            "select (select count(*) from core.customers), (select count(*) from identity.source_records)"
        )[0]
        print(
            f"\nunified customers   {customers:,} from {records:,} customer records "
            f"({records / max(customers, 1):.2f} records per customer)"
        )
        print("\nmembers per tier")
        for tier, n in rows(
            "select tier, count(*) from loyalty.balances join loyalty.program_tiers using (tier) "
            "group by tier, tier_rank order by tier_rank"
        ):
            print(f"  {tier:<22} {n:>8,}")
        print("\nRFM segments")
        for segment, n in rows(
            "select rfm_segment, count(*) from marts.segments group by 1 order by 2 desc, 1"
        ):
            print(f"  {segment:<22} {n:>8,}")
        print(f"\nwarehouse  {warehouse_path}")
        print(f"exports    {exports_folder}")
        if report is not None:
            print(f"report     {report}")
    finally:
        con.close()
