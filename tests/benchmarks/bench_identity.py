"""Benchmark of identity resolution against plain Splink, on several data sets.

    .venv/bin/python -m tests.benchmarks.bench_identity [--datasets febrl1 febrl2 febrl3 uk:20000 us:20000 ...]

Data sets: the public FEBRL 1, 2 and 3 written through the export contract
(tests/benchmarks/febrl.py), and the generator's profiles at chosen sizes (`uk:20000`,
`us:1000000`; seeds never used while tuning). For each: prepare (ingest, staging,
identity.match_input, default settings: the phone region inferred), omniloyal's identity
resolution (Splink model, conflict guard, stable ids) and plain Splink set up the way its
documentation suggests on the same standardized records, each in its own process timed
with its peak memory, both scored against the truth. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

from tests.benchmarks.common import BIN, median, reference_seconds, run_timed

AS_OF = date(2026, 11, 24)


# ---------------------------------------------------------------- stages, run as child processes


def stage_prepare(inbox: Path, warehouse: Path, region: str = "") -> None:
    """Ingest, staging and identity.match_input, with the pipeline's default settings
    (`region` empty: the phone region inferred from the raw tables, as a run does)."""
    from assets.ingest.contract import source_files
    from assets.ingest.deliveries import ingest_inbox
    from assets.shared.warehouse import MACROS_FILE, connect, run_model
    from assets.staging.standardizers import register_udfs

    con = connect(warehouse, {"as_of": AS_OF})
    con.execute(MACROS_FILE.read_text())
    ingest_inbox(con, inbox)
    register_udfs(con, region)
    for spec in source_files():
        run_model(con, f"staging/{spec.table}")
    for model in ("identity/record_keys", "identity/blocked_identifiers", "identity/match_input"):
        run_model(con, model)
    con.close()


def stage_omniloyal(warehouse: Path) -> None:
    from assets.identity.matching import match_records
    from assets.identity.stable_ids import assign_stable_ids
    from assets.shared.warehouse import connect

    con = connect(warehouse, {"as_of": AS_OF})
    result = match_records(con.sql("select * from identity.match_input").to_arrow_table())
    con.register("found", result.clusters)
    con.execute("create or replace table identity.clusters as select * from found")
    assign_stable_ids(con)
    con.close()


def stage_plain_splink(warehouse: Path) -> None:
    """Splink as its tutorials set it up: library comparisons, blocking on single keys."""
    import duckdb
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    con = duckdb.connect(str(warehouse))
    records = con.sql(
        "select unique_id, first_name_key as first_name, last_name_key as surname, birth_on as dob, "
        "email_key as email, phone_e164 as phone, postcode from identity.match_input"
    ).to_arrow_table()
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dob", input_is_string=False),
            cl.EmailComparison("email"),
            cl.ExactMatch("phone").configure(term_frequency_adjustments=True),
            cl.PostcodeComparison("postcode"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("first_name", "surname"),
            block_on("dob"),
            block_on("email"),
            block_on("phone"),
            block_on("postcode"),
        ],
    )
    linker = Linker(DuckDBAPI().register(records), settings, log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "surname", "dob"), block_on("email")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("first_name", "surname")
    )
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    predictions = linker.inference.predict(threshold_match_probability=0.9)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, 0.95
    ).as_pandas_dataframe()
    con.register("found", clusters[["unique_id", "cluster_id"]])
    con.execute("create or replace schema plain")
    con.execute(
        "create table plain.source_records as select m.source, m.source_record_id, "
        "coalesce(f.cluster_id, m.unique_id) as customer_id from identity.match_input m left join found f using (unique_id)"
    )
    con.close()


def stage_score(warehouse: Path, truth: Path, schema: str) -> None:
    """Accuracy of `schema`.source_records (identity or plain) against the truth, as JSON."""
    import duckdb

    from assets.identity.evaluation import evaluate, hard_cases

    if schema != "identity":
        copy = warehouse.with_name("plain.duckdb")
        con = duckdb.connect(str(copy))
        con.execute(f"attach '{warehouse}' as src (read_only)")
        con.execute("create schema if not exists identity")
        con.execute(
            "create or replace table identity.source_records as select * from src.plain.source_records"
        )
        con.execute(
            "create or replace table identity.match_input as select * from src.identity.match_input"
        )
        con.close()
        warehouse = copy
    figures = evaluate(warehouse, truth).as_dict()
    figures["hard_cases"] = hard_cases(warehouse, truth)
    print(json.dumps(figures))


# ---------------------------------------------------------------- the benchmark


def child(*args: str) -> list[str]:
    return [str(BIN / "python"), "-m", "tests.benchmarks.bench_identity", "--stage", *args]


def write_dataset(name: str, folder: Path, seed: int) -> tuple[Path, Path]:
    """The inbox and truth file of a data set: 'febrl1'..'febrl3', or 'PROFILE:PEOPLE' from the
    generator (e.g. 'us:100000'). Kept in `folder`, so a second run reuses them."""
    import subprocess

    inbox, truth = folder / "inbox", folder / "truth.csv"
    if truth.is_file():
        return inbox, truth
    if name.startswith("febrl"):
        from tests.benchmarks.febrl import write_inbox

        write_inbox(int(name[-1]), inbox, truth)
    else:
        profile, people = name.split(":")
        subprocess.run(
            [
                str(BIN / "omniloyal"),
                "generate",
                "--people",
                people,
                "--seed",
                str(seed),
                "--profile",
                profile,
                "--out",
                str(inbox),
                "--truth",
                str(truth),
                "--end-date",
                AS_OF.isoformat(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return inbox, truth


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["febrl1", "febrl2", "febrl3", "uk:20000", "us:20000", "uk:100000", "us:100000"],
        help="febrl1-3, or PROFILE:PEOPLE for the generator (uk or us)",
    )
    parser.add_argument(
        "--seed", type=int, default=1001, help="generator seed (never used while tuning)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of omniloyal's identity stage per data set (median)",
    )
    parser.add_argument(
        "--skip-plain", nargs="*", default=[], help="data sets not to run plain Splink on"
    )
    parser.add_argument(
        "--work", type=Path, help="keep inboxes here and reuse them (default: a temporary folder)"
    )
    parser.add_argument("--stage", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        name, *rest = args.stage
        {
            "prepare": lambda: stage_prepare(Path(rest[0]), Path(rest[1])),
            "omniloyal": lambda: stage_omniloyal(Path(rest[0])),
            "plain": lambda: stage_plain_splink(Path(rest[0])),
            "score": lambda: stage_score(Path(rest[0]), Path(rest[1]), rest[2]),
        }[name]()
        return

    import subprocess

    work = args.work or Path(tempfile.mkdtemp(prefix="omniloyal-identity-"))
    lines = []
    try:
        for name in args.datasets:
            folder = work / name.replace(":", "_")
            folder.mkdir(parents=True, exist_ok=True)
            inbox, truth = write_dataset(name, folder, args.seed)
            prepared, warehouse = folder / "prepared.duckdb", folder / "w.duckdb"
            prepared.unlink(missing_ok=True)
            prepare = run_timed(child("prepare", str(inbox), str(prepared)))
            # Each repetition starts from the same prepared warehouse, so no run sees an earlier
            # run's customer ids; the time is the median, the memory the largest peak.
            runs, references = [], []
            for _ in range(args.repeat):
                shutil.copy(prepared, warehouse)
                references.append(reference_seconds())
                runs.append(run_timed(child("omniloyal", str(warehouse))))
            ours = (median([seconds for seconds, _ in runs]), max(peak for _, peak in runs))
            print(
                f"{name}: omniloyal identity runs {sorted(round(s, 1) for s, _ in runs)} s",
                file=sys.stderr,
            )
            reference = median(references)
            records = int(
                subprocess.run(
                    [
                        str(BIN / "python"),
                        "-c",
                        f"import duckdb; print(duckdb.connect('{warehouse}', read_only=True)"
                        ".execute('select count(*) from identity.match_input').fetchall()[0][0])",
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            score = json.loads(
                subprocess.run(
                    child("score", str(warehouse), str(truth), "identity"),
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            lines.append((name, records, "omniloyal", ours, score, prepare, reference))
            if name not in args.skip_plain:
                plain = run_timed(child("plain", str(warehouse)))
                plain_score = json.loads(
                    subprocess.run(
                        child("score", str(warehouse), str(truth), "plain"),
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
                lines.append(
                    (name, records, "plain Splink", plain, plain_score, prepare, reference)
                )
            print(
                f"done: {name} " + json.dumps({k: score[k] for k in ("precision", "recall", "f1")}),
                file=sys.stderr,
                flush=True,
            )
            for path in (prepared, warehouse, warehouse.with_name("plain.duckdb")):
                path.unlink(missing_ok=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(
        "| data set | records | method | precision | recall | F1 | B-cubed F1 | identity s | ratio to reference | identity peak GB | prepare s | prepare peak GB |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, records, method, (seconds, peak), score, (p_seconds, p_peak), reference in lines:
        print(
            f"| {name} | {records:,} | {method} | {score['precision']:.4f} | {score['recall']:.4f} | "
            f"{score['f1']:.4f} | {score['bcubed_f1']:.4f} | {seconds:.1f} | {seconds / reference:.1f}x | {peak:.2f} | {p_seconds:.1f} | {p_peak:.2f} |"
        )
    print()
    generated = [line for line in lines if ":" in line[0]]
    if generated:
        cases = list(generated[0][4]["hard_cases"])
        print("| data set | method | " + " | ".join(cases) + " |")
        print("|---|---|" + "---:|" * len(cases))
        for name, _, method, _, score, _, _ in generated:
            shares = [
                f"{score['hard_cases'][case][1]:.3f} of {score['hard_cases'][case][0]:,}"
                for case in cases
            ]
            print(f"| {name} | {method} | " + " | ".join(shares) + " |")


if __name__ == "__main__":
    main()
