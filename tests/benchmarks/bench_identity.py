"""Benchmark of identity resolution against plain Splink, on generator data.

    .venv/bin/python -m tests.benchmarks.bench_identity [--people 20000 100000] [--seed 1001]

For each size: generate an inbox (seeds never used while tuning), then in separate
processes, each timed with its peak memory: prepare (ingest, staging, identity.match_input),
omniloyal's identity resolution (Splink model, conflict guard, stable ids), and plain
Splink set up the way its documentation suggests, on the same standardized records.
Both are scored against the generator's truth. Prints Markdown for docs/benchmarks.md.
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


def stage_prepare(inbox: Path, warehouse: Path) -> None:
    from assets.contract import source_files
    from assets.deliveries import ingest_inbox
    from assets.standardizers import register_udfs
    from assets.warehouse import SQL_DIR, connect, run_model

    con = connect(warehouse, {"as_of": AS_OF})
    con.execute((SQL_DIR / "macros.sql").read_text())
    register_udfs(con, "GB")
    ingest_inbox(con, inbox)
    for spec in source_files():
        run_model(con, f"staging/{spec.table}")
    run_model(con, "identity/match_input")
    con.close()


def stage_omniloyal(warehouse: Path) -> None:
    from assets.identity_ids import assign_stable_ids
    from assets.matching import match_records
    from assets.warehouse import connect

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
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("first_name", "surname"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    predictions = linker.inference.predict(threshold_match_probability=0.9)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.95).as_pandas_dataframe()
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

    from assets.evaluation import evaluate, hard_cases

    if schema != "identity":
        copy = warehouse.with_name("plain.duckdb")
        con = duckdb.connect(str(copy))
        con.execute(f"attach '{warehouse}' as src (read_only)")
        con.execute("create schema if not exists identity")
        con.execute("create or replace table identity.source_records as select * from src.plain.source_records")
        con.execute("create or replace table identity.match_input as select * from src.identity.match_input")
        con.close()
        warehouse = copy
    figures = evaluate(warehouse, truth).as_dict()
    figures["hard_cases"] = hard_cases(warehouse, truth)
    print(json.dumps(figures))


# ---------------------------------------------------------------- the benchmark


def child(*args: str) -> list[str]:
    return [str(BIN / "python"), "-m", "tests.benchmarks.bench_identity", "--stage", *args]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--repeat", type=int, default=3, help="runs of omniloyal's identity stage per size (median)")
    parser.add_argument("--skip-plain", action="store_true", help="do not run plain Splink (it is slow at 100k)")
    parser.add_argument("--stage", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        name, *rest = args.stage
        {"prepare": lambda: stage_prepare(Path(rest[0]), Path(rest[1])),
         "omniloyal": lambda: stage_omniloyal(Path(rest[0])),
         "plain": lambda: stage_plain_splink(Path(rest[0])),
         "score": lambda: stage_score(Path(rest[0]), Path(rest[1]), rest[2])}[name]()
        return

    import subprocess

    work = Path(tempfile.mkdtemp(prefix="omniloyal-identity-"))
    lines = []
    try:
        for offset, people in enumerate(args.people):
            seed = args.seed + offset
            inbox, truth, warehouse = work / f"inbox{people}", work / f"truth{people}.csv", work / f"w{people}.duckdb"
            subprocess.run([str(BIN / "omniloyal"), "generate", "--people", str(people), "--seed", str(seed),
                            "--out", str(inbox), "--truth", str(truth), "--end-date", AS_OF.isoformat()],
                           check=True, stdout=subprocess.DEVNULL)
            prepared = work / f"prepared{people}.duckdb"
            prepare = run_timed(child("prepare", str(inbox), str(prepared)))
            # Each repetition starts from the same prepared warehouse, so no run sees an earlier
            # run's customer ids; the time is the median, the memory the largest peak.
            runs, references = [], []
            for _ in range(args.repeat):
                shutil.copy(prepared, warehouse)
                references.append(reference_seconds())
                runs.append(run_timed(child("omniloyal", str(warehouse))))
            ours = (median([seconds for seconds, _ in runs]), max(peak for _, peak in runs))
            print(f"{people} people: omniloyal identity runs {sorted(round(s, 1) for s, _ in runs)} s", file=sys.stderr)
            reference = median(references)
            records = int(subprocess.run(
                [str(BIN / "python"), "-c", f"import duckdb; print(duckdb.connect('{warehouse}', read_only=True)"
                 ".execute('select count(*) from identity.match_input').fetchall()[0][0])"],
                check=True, capture_output=True, text=True).stdout)
            score = json.loads(subprocess.run(child("score", str(warehouse), str(truth), "identity"),
                                              check=True, capture_output=True, text=True).stdout)
            lines.append((people, seed, records, "omniloyal", ours, score, prepare, reference))
            if not args.skip_plain:
                plain = run_timed(child("plain", str(warehouse)))
                plain_score = json.loads(subprocess.run(child("score", str(warehouse), str(truth), "plain"),
                                                        check=True, capture_output=True, text=True).stdout)
                lines.append((people, seed, records, "plain Splink", plain, plain_score, prepare, reference))
            print(f"done: {people} people", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| people (seed) | records | method | precision | recall | F1 | B-cubed F1 | identity s | ratio to reference | identity peak GB | prepare s | prepare peak GB | reference s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for people, seed, records, method, (seconds, peak), score, (p_seconds, p_peak), reference in lines:
        print(f"| {people:,} ({seed}) | {records:,} | {method} | {score['precision']:.4f} | {score['recall']:.4f} | "
              f"{score['f1']:.4f} | {score['bcubed_f1']:.4f} | {seconds:.1f} | {seconds / reference:.1f}x | {peak:.2f} | {p_seconds:.1f} | {p_peak:.2f} | {reference:.2f} |")
    print()
    cases = list(lines[0][5]["hard_cases"])
    print("| people | method | " + " | ".join(cases) + " |")
    print("|---|---|" + "---:|" * len(cases))
    for people, _, _, method, _, score, _, _ in lines:
        shares = [f"{score['hard_cases'][case][1]:.3f} of {score['hard_cases'][case][0]:,}" for case in cases]
        print(f"| {people:,} | {method} | " + " | ".join(shares) + " |")


if __name__ == "__main__":
    main()
