"""The summary `omniloyal run` prints after a successful run, read from the published warehouse."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from assets.shared.warehouse import Warehouse, connect, table_exists

STEP_ENDS = ("STEP_SUCCESS", "STEP_FAILURE")
# The stages in pipeline order (the asset groups); the program tables of loyalty load first,
# but a reader looks for the stages in the order data flows through them.
STAGE_ORDER = ("ingest", "staging", "identity", "core", "loyalty", "marts", "exports")


def stage_timings(
    step_events: Iterable[tuple[float, str, str]], stage_of_step: Mapping[str, str]
) -> list[tuple[str, float]]:
    """Seconds spent per stage, in pipeline order (unknown stages after, as they started).

    `step_events` are (timestamp, event type, step key) from the run's event log; a step's
    time runs from its STEP_START to its STEP_SUCCESS or STEP_FAILURE. Steps run one after
    another in this project (one DuckDB writer), so a stage's time is the sum of its steps'.
    A step missing from `stage_of_step` counts under "other".
    """
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    first_start: dict[str, float] = {}
    for timestamp, event_type, step in step_events:
        stage = stage_of_step.get(step, "other")
        if event_type == "STEP_START":
            started[step] = timestamp
            first_start.setdefault(stage, timestamp)
        elif event_type in STEP_ENDS and step in started:
            seconds[stage] = seconds.get(stage, 0.0) + timestamp - started.pop(step)

    def position(stage: str) -> tuple[int, float]:
        known = STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)
        return known, first_start[stage]

    return [(stage, seconds.get(stage, 0.0)) for stage in sorted(first_start, key=position)]


def slowest_steps(
    step_events: Iterable[tuple[float, str, str]], top: int = 8
) -> list[tuple[str, float]]:
    """The `top` steps that took longest, slowest first (same events as stage_timings).

    A stage's total says where to look; the step says what to change.
    """
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for timestamp, event_type, step in step_events:
        if event_type == "STEP_START":
            started[step] = timestamp
        elif event_type in STEP_ENDS and step in started:
            seconds[step] = timestamp - started.pop(step)
    return sorted(seconds.items(), key=lambda item: (-item[1], item[0]))[:top]


def print_summary(
    warehouse_path: Path,
    exports_folder: Path,
    elapsed_s: float,
    report: Path | None = None,
    new_deliveries: int | None = None,
    timings: list[tuple[str, float]] | None = None,
    purged: Mapping[str, object] | None = None,
    slowest: list[tuple[str, float]] | None = None,
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
        erasures = (
            rows(
                "select count(*) filter (where status = 'completed'), "
                "coalesce(sum(records_erased) filter (where status = 'completed'), 0), "
                "count(*) filter (where status = 'needs_review') from privacy.erasure_log"
            )
            if table_exists(con, "privacy.erasure_log")  # warehouses from before erasure
            else []
        )
        if erasures and any(erasures[0]):
            completed, records, review = erasures[0]
            print(
                f"\nrequests to be forgotten (privacy.erasure_log): {completed:,} completed, "
                f"{records:,} customer records erased; {review:,} need review"
            )
        unfitted = rows(
            "select model, status, reason from marts.clv_fit where status <> 'fitted' order by model"
        )
        if unfitted:
            print("\ncustomer value: predictions left empty (marts.clv_fit)")
            for model, status, reason in unfitted:
                said = reason if reason.startswith(status) else f"{status}: {reason}"
                print(f"  {model:<22} {said}")
        print_purged(purged)
        if timings:
            print("\nseconds per stage")
            for stage, seconds in timings:
                print(f"  {stage:<22} {seconds:>8.1f}")
            print(f"  {'all steps':<22} {sum(s for _, s in timings):>8.1f}")
        if slowest:
            print("\nslowest steps (seconds)")
            for step, seconds in slowest:
                print(f"  {step:<34} {seconds:>8.1f}")
        print(f"\nwarehouse  {warehouse_path}")
        analytics = Warehouse(warehouse_path).analytics_path
        if analytics.exists():
            print(f"analytics  {analytics}  (no personal data: for analysts and BI tools)")
        print(f"exports    {exports_folder}")
        if report is not None:
            print(f"report     {report}")
    finally:
        con.close()


# What the retention step purged (its metadata, assets/privacy/assets.py), as the summary names it.
PURGED_LINES = (
    ("raw_rows_purged", "raw rows no longer in use"),
    ("quarantine_rows_purged", "quarantine rows"),
    ("field_issues_purged", "field issues of purged rows"),
    ("previous_version_files_removed", "earlier warehouse files"),
    ("failed_builds_removed", "failed builds"),
    ("dated_folders_removed", "export and chart folders"),
)


def print_purged(purged: Mapping[str, object] | None) -> None:
    """The "purged" block: only when the run purged something (counts, never values)."""
    if not purged or not any(purged.get(key) for key, _ in PURGED_LINES):
        return
    print(
        f"\npurged (retention {purged['retention_days']} days; "
        f"rows of deliveries before {purged['cutoff_on']})"
    )
    for key, label in PURGED_LINES:
        if purged.get(key):
            print(f"  {label:<30} {purged[key]:>8,}")
