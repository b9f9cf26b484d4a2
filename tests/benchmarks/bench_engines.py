"""Identity on DuckDB and on Spark (local mode) on one generated inbox: time and accuracy.

    make install-spark
    .venv/bin/python -m tests.benchmarks.bench_engines --people 1500 --work /tmp/bench-engines [--master local[*]]

Three runs of match_records on the same identity.match_input (the generator's inbox, prepared
as tests/test_matching_robustness.py does): DuckDB training its model, Spark training its own,
and Spark scoring with the model DuckDB saved (all Spark does then is score pairs, so its
clusters should be DuckDB's exactly). Each is scored against the generator's truth (pairwise
precision, recall, F1). The first Spark run's time includes starting Spark's JVM (a few
seconds). Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import pyarrow.parquet as pq

from assets.identity.matching import match_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--work", type=Path, required=True, help="folder for the inbox")
    parser.add_argument("--master", default="local[*]", help="Spark master (default: local[*])")
    parser.add_argument("--memory", default="2GB", help="memory limit of each engine")
    args = parser.parse_args()

    # The test module's helpers: generate, ingest, standardize, build match_input; pairwise F1.
    from tests.test_matching_robustness import pairwise_f1, prepare

    folder = args.work / f"people-{args.people}-seed-{args.seed}"
    if not (folder / "records.parquet").exists():
        folder.mkdir(parents=True, exist_ok=True)
        records, truth = prepare(folder, people=args.people, seed=args.seed)
        pq.write_table(records, folder / "records.parquet")
        (folder / "truth.json").write_text(json.dumps(truth), encoding="utf-8")
    records = pq.read_table(folder / "records.parquet")
    truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))

    rows = []
    saved_model = folder / "duckdb_model.json"
    runs = [
        ("duckdb", "trained", None),
        ("spark", "trained", None),
        ("spark", "DuckDB's saved model", saved_model),
    ]
    duckdb_clusters = None
    for engine, mode, model in runs:
        started = time.perf_counter()
        result = match_records(
            records, model=model, memory_limit=args.memory, engine=engine, spark_master=args.master
        )
        seconds = time.perf_counter() - started
        if engine == "duckdb":
            saved_model.write_text(json.dumps(result.model_json), encoding="utf-8")
            duckdb_clusters = result.clusters
        precision, recall = pairwise_f1(records, result.clusters, truth)
        f1 = 2 * precision * recall / (precision + recall)
        same = "yes" if result.clusters.equals(duckdb_clusters) else "no"
        steps = ", ".join(
            f"{step} {took.split(',')[0]}" for step, took in result.training.steps.items()
        )
        rows.append((engine, mode, seconds, precision, recall, f1, same, steps))

    print(
        f"{args.people} people, {records.num_rows} records; {os.cpu_count()} cores, "
        f"{platform.python_version()}, Spark master {args.master}\n"
    )
    print("| engine | model | seconds | precision | recall | F1 | clusters = DuckDB's | steps |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | --- |")
    for engine, mode, seconds, precision, recall, f1, same, steps in rows:
        print(
            f"| {engine} | {mode} | {seconds:.1f} | {precision:.4f} | {recall:.4f} | {f1:.4f} "
            f"| {same} | {steps} |"
        )


if __name__ == "__main__":
    main()
