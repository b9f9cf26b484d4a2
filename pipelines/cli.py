"""The `omniloyal` command line.

    omniloyal run       materialize every asset in-process (the job the UI and schedule run)
    omniloyal generate  write a realistic messy inbox, and its truth file
    omniloyal evaluate  measure identity resolution against a truth file
    omniloyal export    re-export one segment from the published warehouse, or its
                        hashed-only file for an ad platform (--for google|meta)
    omniloyal find NAME rank customers by how closely they match a name, phone or e-mail
    omniloyal identity explain CUSTOMER_ID
                        why a customer's records are one customer: links, cut links, stewards' decisions
    omniloyal subject-export --email E | --phone P | --customer-id C --out FILE.json
                        everything held on one person, as JSON for them (GDPR art. 15)
    omniloyal forget    write a request to be forgotten into the inbox; the next run applies it

Failures print one clear message and exit non-zero; no tracebacks for bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from datetime import date
from pathlib import Path

# Before dagster or great_expectations are imported anywhere.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# With pyspark installed (identity_engine spark), Great Expectations imports it, and pyspark
# warns at every start that it is not yet tested with pandas 3: nothing here uses pandas on Spark.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value}")
    return value


def _date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from assets.shared.defaults import env_default  # not assets.shared.settings: it imports dagster

    parser = argparse.ArgumentParser(
        prog="omniloyal", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="ingest the inbox and rebuild the warehouse, segments and exports"
    )
    run.add_argument(
        "--inbox", default=env_default("inbox_dir"), help="inbox folder (default: %(default)s)"
    )
    run.add_argument(
        "--warehouse",
        default=env_default("warehouse_path"),
        help="published DuckDB file (default: %(default)s)",
    )
    run.add_argument(
        "--exports",
        default=env_default("exports_dir"),
        help="exports folder (default: %(default)s)",
    )
    run.add_argument(
        "--reports",
        default=env_default("reports_dir"),
        help="reports folder (default: %(default)s)",
    )
    run.add_argument(
        "--program",
        default=env_default("program_file"),
        help="loyalty program file (default: the bundled one)",
    )
    run.add_argument(
        "--as-of",
        type=_date,
        default=env_default("as_of") or None,
        help="compute as of this date (default: today, UTC)",
    )
    run.add_argument(
        "--phone-region",
        default=env_default("phone_region"),
        help="region (GB, US, ...) of phone numbers without a country code; a web customer's own country comes first "
        "(default: %s)"
        % (
            env_default("phone_region")
            or "inferred from the data: the most common country of numbers "
            "written with a country code and of web customers' countries, GB when none"
        ),
    )
    run.add_argument(
        "--identity-model",
        default=env_default("identity_model"),
        help="reuse a saved splink_model.json instead of training (default: train)",
    )
    run.add_argument(
        "--identity-overrides",
        default=env_default("identity_overrides"),
        help="stewards' decisions CSV (same_person / different_people pairs) honoured over the model (default: none)",
    )
    run.add_argument(
        "--identity-refresh",
        choices=["auto", "full", "rescore"],
        default=env_default("identity_refresh"),
        help="auto: score only new and changed records when they are few; full: train and score "
        "every record; rescore: score every record with the saved model (default: %(default)s)",
    )
    run.add_argument(
        "--full-refresh",
        action="store_true",
        help="train the matching model afresh and score every record (--identity-refresh full)",
    )
    run.add_argument(
        "--identity-engine",
        default=env_default("identity_engine"),
        help="where the matching model trains and scores record pairs: duckdb, or spark "
        "(pip install '.[spark]'; docs/scale.md) (default: %(default)s)",
    )
    run.add_argument(
        "--spark-master",
        default=env_default("spark_master"),
        help="with --identity-engine spark: local[*], local[N] or a cluster's URL (default: %(default)s)",
    )
    run.add_argument(
        "--job",
        choices=["omniloyal_everything", "loyalty_and_marts"],
        default="omniloyal_everything",
        help="everything, or only loyalty, marts and exports after a program change (default: %(default)s)",
    )
    run.add_argument(
        "--verbose", action="store_true", help="show Dagster's event log while running"
    )

    generate = commands.add_parser(
        "generate", help="write a realistic messy inbox in the export contract's format"
    )
    generate.add_argument(
        "--people", type=_at_least_one, default=5000, help="number of people (default: %(default)s)"
    )
    generate.add_argument("--seed", type=int, default=7, help="random seed (default: %(default)s)")
    generate.add_argument(
        "--out",
        type=Path,
        default=Path(env_default("inbox_dir")),
        help="inbox folder to write (default: %(default)s)",
    )
    generate.add_argument(
        "--truth", type=Path, help="also write the true person of every customer record to this CSV"
    )
    generate.add_argument(
        "--days",
        type=_at_least_one,
        default=1,
        help="spread deliveries over this many daily files (default: %(default)s)",
    )
    generate.add_argument(
        "--end-date", type=_date, help="date of the last delivery (default: today, UTC)"
    )
    generate.add_argument(
        "--bad-row-rate",
        type=_share,
        default=0.001,
        help="share of deliberately broken rows (default: %(default)s)",
    )
    generate.add_argument("--gzip", action="store_true", help="write gzip-compressed files")
    generate.add_argument(
        "--profile",
        choices=["uk", "us"],
        default="uk",
        help="country of the people: UK or US names, addresses and phone numbers (default: %(default)s)",
    )

    evaluate = commands.add_parser(
        "evaluate", help="pairwise and B-cubed precision, recall and F1 against a truth file"
    )
    evaluate.add_argument(
        "--warehouse",
        default=env_default("warehouse_path"),
        help="published DuckDB file (default: %(default)s)",
    )
    evaluate.add_argument(
        "--truth",
        type=Path,
        required=True,
        help="CSV source,source_record_id,person_id (from omniloyal generate --truth)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")

    export = commands.add_parser(
        "export", help="re-export one segment from the published warehouse, without a run"
    )
    export.add_argument(
        "--segment", required=True, help="segment name, e.g. Champions or 'Gold Nearly Platinum'"
    )
    export.add_argument(
        "--format",
        choices=["csv", "parquet"],
        action="append",
        help="file format; repeat for both (default: csv and parquet)",
    )
    hashing = export.add_mutually_exclusive_group()
    hashing.add_argument(
        "--hashes",
        action="store_true",
        help="add SHA-256 e-mail and phone columns beside the plain ones",
    )
    hashing.add_argument(
        "--for",
        dest="platform",
        choices=["google", "meta"],
        help="instead, a hashed-only file in the ad platform's upload template: Google Customer "
        "Match or Meta custom audience, marketing consent only (default format: csv)",
    )
    export.add_argument(
        "--warehouse",
        default=env_default("warehouse_path"),
        help="published DuckDB file (default: %(default)s)",
    )
    export.add_argument(
        "--exports",
        default=env_default("exports_dir"),
        help="exports folder (default: %(default)s)",
    )
    export.add_argument(
        "--program",
        default=env_default("program_file"),
        help="loyalty program file (default: the bundled one)",
    )

    find = commands.add_parser(
        "find",
        help="rank customers by how closely they match a name, narrowed by phone or e-mail",
    )
    find.add_argument(
        "name", nargs="?", default="", help="a name as typed, e.g. 'Jon Smyth' (fuzzy)"
    )
    find.add_argument("--phone", help="only customers with this phone, in any common format")
    find.add_argument("--email", help="only customers with this e-mail")
    find.add_argument(
        "--limit",
        type=_at_least_one,
        default=10,
        help="show at most this many (default: %(default)s)",
    )
    find.add_argument(
        "--unmasked",
        action="store_true",
        help="show names, e-mails and phones unmasked",
    )
    find.add_argument(
        "--warehouse",
        default=env_default("warehouse_path"),
        help="published DuckDB file (default: %(default)s)",
    )

    identity = commands.add_parser(
        "identity", help="inspect identity resolution in the published warehouse"
    )
    identity_commands = identity.add_subparsers(dest="identity_command", required=True)
    explain = identity_commands.add_parser(
        "explain",
        help="a customer's records, the links that joined them, the links cut, and stewards' decisions",
    )
    explain.add_argument("customer_id", help="the customer_id, e.g. C0123456789AB")
    explain.add_argument(
        "--warehouse",
        default=env_default("warehouse_path"),
        help="published DuckDB file (default: %(default)s)",
    )
    explain.add_argument(
        "--show-personal-data",
        action="store_true",
        help="show names, e-mails, phones, birth dates and addresses unmasked",
    )

    subject = commands.add_parser(
        "subject-export",
        help="everything held on one person (profile, records, consent, points, segments, "
        "exports) as a JSON file for them (GDPR art. 15)",
    )
    who = subject.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="the person's e-mail, on any of their records")
    who.add_argument("--phone", help="the person's phone, in any common format")
    who.add_argument("--customer-id", help="the customer_id, e.g. C0123456789AB")
    subject.add_argument(
        "--out",
        type=Path,
        required=True,
        help="JSON file to write (unmasked, mode 0600; replaced if it exists)",
    )
    subject.add_argument(
        "--warehouse",
        default=env_default("warehouse_path"),
        help="published DuckDB file (default: %(default)s)",
    )
    subject.add_argument(
        "--exports",
        default=env_default("exports_dir"),
        help="exports folder, every date of it searched (default: %(default)s)",
    )
    forget = commands.add_parser(
        "forget",
        help="write a request to be forgotten into the inbox (privacy/erasure_requests_*.csv); the next run applies it",
    )
    forget.add_argument("--email", help="the person's e-mail")
    forget.add_argument("--phone", help="the person's phone, in any common format")
    forget.add_argument(
        "--source", help="with --record-id: the source of one of the person's records"
    )
    forget.add_argument("--record-id", help="with --source: that record's key in the source")
    forget.add_argument(
        "--request-id", help="the request's id (default: a new one, ER-<date>-<random>)"
    )
    forget.add_argument(
        "--inbox",
        default=env_default("inbox_dir"),
        help="inbox folder (default: %(default)s)",
    )
    return parser


def command_run(args: argparse.Namespace) -> int:
    from assets.shared.defaults import SettingsError, check_settings

    settings = {
        "inbox_dir": args.inbox,
        "warehouse_path": args.warehouse,
        "exports_dir": args.exports,
        "reports_dir": args.reports,
        "program_file": args.program,
        "as_of": args.as_of or "",
        "phone_region": args.phone_region,
        "identity_model": args.identity_model,
        "identity_overrides": args.identity_overrides,
        "identity_refresh": "full" if args.full_refresh else args.identity_refresh,
        "identity_engine": args.identity_engine,
        "spark_master": args.spark_master,
    }
    try:
        check_settings(settings)  # every setting, before any work (and before Dagster is imported)
    except SettingsError as err:
        print(f"omniloyal run: {err}", file=sys.stderr)
        return 2
    from assets.loyalty.program import ProgramError, load_program

    try:
        # The whole program file too, not only that it exists: the run reads it once more at its
        # start (PipelineSettings.setup_for_execution), but a broken file is cheaper refused here.
        load_program(args.program)
    except ProgramError as err:
        print(f"omniloyal run: {err}", file=sys.stderr)
        return 2
    import dagster as dg

    from assets.shared.settings import PipelineSettings
    from pipelines.definitions import defs
    from pipelines.summary import print_summary, slowest_steps

    if not Path(args.inbox).is_dir():
        print(
            f"omniloyal run: inbox folder {args.inbox} does not exist (try: omniloyal generate --out {args.inbox})",
            file=sys.stderr,
        )
        return 2
    if args.identity_overrides:
        from assets.identity.steward_decisions import StewardDecisionsError, read_decisions

        try:
            read_decisions(
                args.identity_overrides
            )  # a file that cannot be used fails before the run starts
        except StewardDecisionsError as err:
            print(f"omniloyal run: {err}", file=sys.stderr)
            return 2
    from assets.shared.run_lock import RunLock, WarehouseLocked
    from assets.shared.warehouse import Warehouse, WarehouseError

    # One writer at a time: a second run on this warehouse refuses here, before any work,
    # as does a run on a warehouse another process is writing.
    lock = RunLock(args.warehouse)
    try:
        lock.acquire()
        Warehouse(args.warehouse).refuse_if_written("copy")
    except (WarehouseLocked, WarehouseError) as err:
        lock.release()
        print(f"omniloyal run: {err}", file=sys.stderr)
        return 2
    if lock.took_over:
        print(
            f"omniloyal run: warning: took over the stale lock of {lock.took_over.describe()}: that run is gone",
            file=sys.stderr,
        )
    started = time.monotonic()
    try:
        job = defs.resolve_job_def(args.job)
        instance = (
            dg.DagsterInstance.get()
            if os.environ.get("DAGSTER_HOME")
            else dg.DagsterInstance.ephemeral()
        )
        result = job.execute_in_process(
            run_config={
                "resources": {"settings": {"config": settings}},
                # Dagster logs each failure with its traceback; this command prints the cause itself.
                "loggers": {
                    "console": {"config": {"log_level": "DEBUG" if args.verbose else "CRITICAL"}}
                },
            },
            instance=instance,
            raise_on_error=False,
        )
    finally:
        lock.release()
    failures = _failures(result)
    # Once the warehouse is replaced the run's data is out: the command says what else went
    # wrong but does not fail (exit 0).
    published = _published(result)
    if (failures or not result.success) and not published:
        print("omniloyal run failed; the published warehouse is unchanged.", file=sys.stderr)
        for step, message in failures:
            lines = message.splitlines() or [""]
            print(f"  {step}: {lines[0]}", file=sys.stderr)
            for line in lines[1:]:  # a step naming several files: a line each
                print(f"  {' ' * len(step)}  {line}", file=sys.stderr)
        return 1
    if failures or not result.success:
        print(f"omniloyal run: published {args.warehouse}, but:", file=sys.stderr)
        for step, message in failures or [("run", "failed after publishing")]:
            print(f"  {step}: {message}", file=sys.stderr)
    as_of = PipelineSettings(as_of=args.as_of or "").as_of_date().isoformat()
    try:
        print_summary(
            Path(args.warehouse),
            Path(args.exports) / as_of,
            time.monotonic() - started,
            report=Path(args.reports) / f"{as_of}.html",
            new_deliveries=_new_deliveries(result),
            timings=_stage_timings(instance, result.run_id, defs),
            purged=_purged(result),
            slowest=slowest_steps(_step_events(instance, result.run_id)),
        )
    except (
        Exception
    ) as err:  # the run is published: a summary that cannot be read is not a failed run
        print(
            f"omniloyal run: published {args.warehouse}, but could not read its summary: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}",
            file=sys.stderr,
        )
    return 0


def _new_deliveries(result) -> int | None:
    """How many deliveries this run ingested (the raw/deliveries materialization's metadata)."""
    for materialization in result.asset_materializations_for_node("raw_deliveries"):
        if materialization.asset_key.path == ["raw", "deliveries"]:
            return materialization.metadata["new_deliveries"].value
    return None


def _purged(result) -> dict[str, object] | None:
    """What the run's retention step purged (its metadata: counts only), if it ran."""
    for materialization in result.asset_materializations_for_node("retention_purge"):
        return {key: value.value for key, value in materialization.metadata.items()}
    return None


def _stage_timings(instance, run_id: str, defs) -> list[tuple[str, float]]:
    """Seconds per stage (asset group) of the run, read from its event log."""
    from pipelines.summary import stage_timings

    asset_graph = defs.resolve_asset_graph()
    stage_of_step = {}
    for assets_def in defs.assets:
        stage_of_step[assets_def.node_def.name] = next(iter(assets_def.group_names_by_key.values()))
    for check_def in defs.asset_checks or ():
        asset_key = next(iter(check_def.check_keys)).asset_key
        stage_of_step[check_def.node_def.name] = asset_graph.get(asset_key).group_name
    return stage_timings(_step_events(instance, run_id), stage_of_step)


def _step_events(instance, run_id: str) -> list[tuple[float, str, str]]:
    """(timestamp, event type, step key) of every step event of the run."""
    return [
        (entry.timestamp, entry.dagster_event.event_type_value, entry.dagster_event.step_key)
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None and entry.dagster_event.step_key
    ]


def _published(result) -> bool:
    """Whether the run replaced the published warehouse: its publish step succeeded, or failed
    after the swap (on the exports, assets/exports/assets.py published_warehouse)."""
    if result.asset_materializations_for_node("published_warehouse"):
        return True
    for event in result.all_events:
        if event.is_step_failure and event.step_key == "published_warehouse":
            user = event.step_failure_data.user_failure_data
            return bool(user and "warehouse_published" in (user.metadata or {}))
    return False


def _failures(result) -> list[tuple[str, str]]:
    """(step, message) of every failed step, and of every check failed with ERROR severity."""
    from dagster import AssetCheckSeverity

    found = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            user = event.step_failure_data.user_failure_data
            while error is not None and error.cause is not None:
                error = error.cause  # Dagster wraps the exception the step raised
            message = (
                user.description
                if user and user.description
                else (error.message.strip() if error else "failed")
            )
            found.append((event.step_key, message))
        elif event.event_type_value == "RESOURCE_INIT_FAILURE":
            # The settings resource reads the program file when the run starts: a file broken
            # after the command line checked it fails there, before any step.
            error = event.event_specific_data.error
            while error is not None and error.cause is not None:
                error = error.cause
            message = error.message.strip() if error else "failed"
            prefix, _, rest = message.partition(": ")
            found.append(
                ("run start", rest if error and prefix.endswith(error.cls_name) else message)
            )
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR:
                found.append(
                    (
                        evaluation.asset_check_key.to_user_string(),
                        "check failed (see its metadata in the Dagster UI)",
                    )
                )
    return found


def command_generate(args: argparse.Namespace) -> int:
    from pipelines.generator import generate_inbox

    end_date = date.fromisoformat(args.end_date) if args.end_date else None
    started = time.monotonic()
    counts = generate_inbox(
        people=args.people,
        seed=args.seed,
        out_dir=args.out,
        truth_path=args.truth,
        days=args.days,
        end_date=end_date,
        bad_row_rate=args.bad_row_rate,
        compress=args.gzip,
        profile=args.profile,
    )
    for kind, rows in counts.items():
        print(f"  {kind:<24} {rows:>10,} rows")
    print(f"wrote {args.out} in {time.monotonic() - started:.1f} s")
    return 0


def command_evaluate(args: argparse.Namespace) -> int:
    import json

    from assets.identity.evaluation import evaluate, hard_cases

    for path in (Path(args.warehouse), args.truth):
        if not path.exists():
            print(f"omniloyal evaluate: {path} does not exist", file=sys.stderr)
            return 2
    import duckdb

    try:
        found = duckdb.connect().execute(
            "select * from read_csv(?, all_varchar = true) limit 0", [str(args.truth)]
        )
        header = [column[0] for column in found.description]
    except duckdb.Error:
        header = []
    missing = [c for c in ("source", "source_record_id", "person_id") if c not in header]
    if missing:
        print(
            f"omniloyal evaluate: {args.truth}: a truth file has the columns source, source_record_id "
            f"and person_id (as `omniloyal generate --truth` writes it); missing {', '.join(missing)}",
            file=sys.stderr,
        )
        return 2
    result = evaluate(args.warehouse, args.truth)
    cases = hard_cases(args.warehouse, args.truth)
    if args.json:
        figures = result.as_dict()
        figures["hard_cases"] = {
            case: {"pairs": pairs, "share_in_one_customer": share}
            for case, (pairs, share) in cases.items()
        }
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"records evaluated   {result.records:,} ({result.people:,} people, {result.customers:,} customers)"
    )
    print(
        f"pairwise            precision {result.precision:.4f}  recall {result.recall:.4f}  F1 {result.f1:.4f}"
    )
    print(
        f"                    {result.correct_pairs:,} correct of {result.predicted_pairs:,} predicted, {result.true_pairs:,} true pairs"
    )
    print(
        f"B-cubed             precision {result.bcubed_precision:.4f}  recall {result.bcubed_recall:.4f}  F1 {result.bcubed_f1:.4f}"
    )
    print("hard cases          pairs   share in one customer")
    for case, (pairs, share) in cases.items():
        print(f"  {case:<52} {pairs:>7,}   {share:.3f}")
    return 0


def open_published(warehouse: str, command: str):
    """The published warehouse, read-only (a reader never blocks a run nor changes the file);
    None, with a one-line error, when it cannot be opened."""
    import duckdb

    try:
        return duckdb.connect(warehouse, read_only=True)
    except duckdb.Error as err:
        print(f"{command}: {warehouse}: {str(err).splitlines()[0]}", file=sys.stderr)
        return None


def command_export(args: argparse.Namespace) -> int:
    import duckdb

    from assets.exports.segment_files import FORMATS, write_segment_exports
    from assets.loyalty.program import ProgramError, load_program

    if not Path(args.warehouse).is_file():
        print(
            f"omniloyal export: {args.warehouse} does not exist (run `omniloyal run` first)",
            file=sys.stderr,
        )
        return 2
    try:
        program = load_program(args.program)
    except ProgramError as err:
        print(f"omniloyal export: {err}", file=sys.stderr)
        return 2
    from assets.shared.run_lock import RunLock, WarehouseLocked

    # A run publishing meanwhile would swap the whole exports folder under this export.
    lock = RunLock(args.warehouse)
    try:
        lock.acquire()
    except WarehouseLocked as err:
        print(f"omniloyal export: {err}", file=sys.stderr)
        return 2
    con = open_published(args.warehouse, "omniloyal export")
    if con is None:
        lock.release()
        return 2
    try:
        (as_of,) = con.execute("select max(as_of_on) from marts.segments").fetchall()[0]
        if as_of is None:
            raise ValueError(
                f"{args.warehouse} has no segments to export (marts.segments is empty)"
            )
        written = write_segment_exports(
            con,
            program,
            Path(args.exports),
            as_of,
            # An ad platform's uploader takes CSV; Parquet only when asked for.
            formats=tuple(args.format or (FORMATS if args.platform is None else ("csv",))),
            hashes=args.hashes,
            only=args.segment,
            platform=args.platform,
        )
    except (ValueError, duckdb.Error) as err:
        # duckdb.Error: a warehouse published before the segments existed, or not a warehouse.
        print(f"omniloyal export: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        con.close()
        lock.release()
    for entry in written:
        consent = (
            f"{entry['channel']} consent"
            if entry["platform"] is None
            else f"marketing consent, hashed for {entry['platform']}"
        )
        for kind in entry["files"].values():
            print(
                f"{Path(args.exports) / as_of.isoformat() / kind['file']}  {entry['rows']:,} customers ({consent})"
            )
    return 0


def command_find(args: argparse.Namespace) -> int:
    import duckdb

    from pipelines.find import FindError, describe, find_customers, phone_ending

    try:
        # The query first: a bad one is refused before the warehouse is opened.
        if not (args.name.strip() or args.phone or (args.email or "").strip()):
            raise FindError("give a name, --phone or --email to search for")
        if args.phone is not None:
            phone_ending(args.phone)
    except FindError as err:
        print(f"omniloyal find: {err}", file=sys.stderr)
        return 2
    if not Path(args.warehouse).is_file():
        print(
            f"omniloyal find: {args.warehouse} does not exist (run `omniloyal run` first)",
            file=sys.stderr,
        )
        return 2
    con = open_published(args.warehouse, "omniloyal find")
    if con is None:
        return 2
    try:
        matches = find_customers(
            con, args.name, phone=args.phone, email=args.email, limit=args.limit
        )
    except FindError as err:
        print(f"omniloyal find: {err}", file=sys.stderr)
        return 2
    except duckdb.Error as err:
        # Not a warehouse, or one without core.customers.
        print(f"omniloyal find: {args.warehouse}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        con.close()
    print("\n".join(describe(matches, unmasked=args.unmasked)))
    return 0


def command_identity(args: argparse.Namespace) -> int:
    import duckdb

    from pipelines.explain import UnknownCustomer, explain_customer

    if not Path(args.warehouse).is_file():
        print(
            f"omniloyal identity explain: {args.warehouse} does not exist (run `omniloyal run` first)",
            file=sys.stderr,
        )
        return 2
    con = open_published(args.warehouse, "omniloyal identity explain")
    if con is None:
        return 2
    try:
        lines = explain_customer(con, args.customer_id, show_personal_data=args.show_personal_data)
    except UnknownCustomer as err:
        print(f"omniloyal identity explain: {err}", file=sys.stderr)
        return 2
    except duckdb.Error as err:
        # Not a warehouse, or one published before identity resolution had these tables.
        print(
            f"omniloyal identity explain: {args.warehouse}: {str(err).splitlines()[0]}",
            file=sys.stderr,
        )
        return 2
    finally:
        con.close()
    print("\n".join(lines))
    return 0


def command_subject_export(args: argparse.Namespace) -> int:
    import duckdb

    from pipelines.find import FindError, phone_ending
    from pipelines.subject_export import (
        SubjectExportError,
        counts,
        find_subject,
        subject_export,
        write_private_json,
    )

    command = "omniloyal subject-export"
    # Every argument before the warehouse is opened; no message repeats the value asked for.
    try:
        if args.phone is not None:
            phone_ending(args.phone)
    except FindError as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 2
    for flag, value in (("--email", args.email), ("--customer-id", args.customer_id)):
        if value is not None and not value.strip():
            print(f"{command}: {flag} is empty", file=sys.stderr)
            return 2
    if args.out.is_dir() or not args.out.parent.is_dir():
        problem = "is a folder" if args.out.is_dir() else "is in a folder that does not exist"
        print(f"{command}: --out {args.out} {problem}", file=sys.stderr)
        return 2
    if not Path(args.warehouse).is_file():
        print(
            f"{command}: {args.warehouse} does not exist (run `omniloyal run` first)",
            file=sys.stderr,
        )
        return 2
    con = open_published(args.warehouse, command)
    if con is None:
        return 2
    asked = {
        key: value
        for key, value in (
            ("email", args.email),
            ("phone", args.phone),
            ("customer_id", args.customer_id),
        )
        if value is not None
    }
    try:
        customer_ids = find_subject(con, args.email, args.phone, args.customer_id)
        document = subject_export(con, customer_ids, Path(args.exports), asked)
    except SubjectExportError as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 2
    except duckdb.Error as err:
        # Not a warehouse, or one published before a table this command reads existed.
        print(f"{command}: {args.warehouse}: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        con.close()
    try:
        write_private_json(document, args.out)
    except OSError as err:
        print(f"{command}: --out {args.out}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} (mode 0600, unmasked: for the person only)")
    for what, number in counts(document).items():
        print(f"  {what:<20} {number:>6,}")
    if not Path(args.exports).is_dir():
        print(f"  note: no exports folder {args.exports}, so no export file was searched")
    if len(customer_ids) > 1:
        print(
            f"  note: {len(customer_ids)} customers match; the file holds each. Check that each is "
            "the person asking before handing it over."
        )
    return 0


def command_forget(args: argparse.Namespace) -> int:
    from pipelines.forget import ForgetError, write_request

    try:
        path, request_id = write_request(
            Path(args.inbox), args.email, args.phone, args.source, args.record_id, args.request_id
        )
    except ForgetError as err:
        print(f"omniloyal forget: {err}", file=sys.stderr)
        return 2
    print(f"request {request_id} written to {path}; the next `omniloyal run` applies it")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "run": command_run,
        "generate": command_generate,
        "evaluate": command_evaluate,
        "export": command_export,
        "find": command_find,
        "identity": command_identity,
        "subject-export": command_subject_export,
        "forget": command_forget,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
