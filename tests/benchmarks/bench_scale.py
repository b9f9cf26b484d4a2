"""The scale ladder: a whole `omniloyal run` at several sizes, with the time and peak memory of
every stage.

    .venv/bin/python -m tests.benchmarks.bench_scale --people 100000 200000 500000 1000000 --work /tmp/ladder

For each size: generate the inbox once (`omniloyal generate --people N --seed 7`, kept under
--work and reused), then run the pipeline into a fresh warehouse with its own Dagster instance.
While it runs, the run's resident memory is sampled every 0.2 s from /proc (the run is one
process: Dagster's in-process executor, DuckDB's threads and Splink's DuckDB all count); after
it, each sample is given to the step running at that moment, from the run's event log. A
stage's time is the sum of its steps' (they run one after another); its peak is the largest
sample during its steps. The whole run's peak is GNU time's maximum resident set size.
Prints Markdown for docs/benchmarks.md; --repeat N gives the median of N runs per size;
--steps also prints, to stderr, every step's seconds, the memory the process held when it
started (what earlier steps left behind) and its peak.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tests.benchmarks.common import BIN, PROJECT, reference_seconds

STAGES = ("ingest", "staging", "identity", "core", "loyalty", "marts", "exports")


def generate(people: int, work: Path) -> Path:
    inbox = work / f"inbox_{people}"
    if not (inbox / "web").is_dir():
        subprocess.run(
            [str(BIN / "omniloyal"), "generate", "--people", str(people), "--seed", "7"]
            + ["--out", str(inbox)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return inbox


def rss_gb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return 0.0


def run_once(inbox: Path, folder: Path, extra: list[str]) -> dict:
    """One run into a fresh folder: wall seconds, peak GB, per-stage seconds and peak GB."""
    shutil.rmtree(folder, ignore_errors=True)
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = dict(os.environ, DAGSTER_HOME=str(home), DAGSTER_DISABLE_TELEMETRY="1")
    env["GX_ANALYTICS_ENABLED"] = "false"
    command = [str(BIN / "omniloyal"), "run", "--inbox", str(inbox)]
    command += ["--warehouse", str(folder / "wh" / "omniloyal.duckdb")]
    command += ["--exports", str(folder / "exports"), "--reports", str(folder / "reports")]
    started = time.perf_counter()
    child = subprocess.Popen(
        ["/usr/bin/time", "-f", "peak_kb=%M", *command, *extra],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    samples = []  # (unix time, GB)
    run_pid = None
    while child.poll() is None:
        if run_pid is None:  # the omniloyal process under GNU time
            children = Path(f"/proc/{child.pid}/task/{child.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            run_pid = int(pids[0]) if pids else None
        if run_pid is not None:
            samples.append((time.time(), rss_gb(run_pid)))
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    stderr = child.stderr.read()
    if child.returncode != 0:
        sys.exit(f"run failed at {inbox}: {stderr.strip().splitlines()[-1:]}")
    peak = int(stderr.rsplit("peak_kb=", 1)[1].split()[0]) / 1e6
    stages, steps = stage_figures(home, samples)
    return {"seconds": elapsed, "peak_gb": peak, "stages": stages, "steps": steps}


def stage_figures(
    home: Path, samples: list[tuple[float, float]]
) -> tuple[dict[str, tuple[float, float]], list[tuple[str, float, float, float]]]:
    """stage -> (seconds, peak GB) from the run's event log and the memory samples, and
    per step (in the order they ran): seconds, resident GB when it started, peak GB."""
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    from pipelines.definitions import defs

    stage_of_step = {
        a.node_def.name: next(iter(a.group_names_by_key.values())) for a in defs.assets
    }
    graph = defs.resolve_asset_graph()
    for check in defs.asset_checks or ():
        stage_of_step[check.node_def.name] = graph.get(
            next(iter(check.check_keys)).asset_key
        ).group_name
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        events = [
            (e.timestamp, e.dagster_event.event_type_value, e.dagster_event.step_key)
            for e in instance.all_logs(run.run_id)
            if e.dagster_event is not None and e.dagster_event.step_key
        ]
    spans = []  # (start, end, stage, step)
    started = {}
    for timestamp, kind, step in events:
        if kind == "STEP_START":
            started[step] = timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and step in started:
            spans.append((started.pop(step), timestamp, stage_of_step.get(step, "other"), step))
    figures: dict[str, list[float]] = {}
    steps = []  # (step, seconds, GB when it started, peak GB): what a step carried from before
    for start, end, stage, step in spans:
        seconds, peak = figures.get(stage, [0.0, 0.0])
        during = [gb for t, gb in samples if start <= t <= end]
        before = [gb for t, gb in samples if t <= start]
        figures[stage] = [seconds + end - start, max([peak, *during])]
        steps.append((step, end - start, before[-1] if before else 0.0, max(during, default=0.0)))
    return {stage: (s, p) for stage, (s, p) in figures.items()}, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, nargs="+", default=[100_000, 200_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/ladder"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--steps",
        action="store_true",
        help="also print every step over a second: its seconds, memory at its start and peak",
    )
    parser.add_argument("extra", nargs="*", help="more `omniloyal run` arguments, after --")
    args = parser.parse_args()
    rows = []
    for people in args.people:
        inbox = generate(people, args.work)
        runs = []
        for i in range(args.repeat):
            reference = reference_seconds()
            result = run_once(inbox, args.work / f"run_{people}", args.extra)
            result["reference"] = reference
            runs.append(result)
            print(f"{people:,} people, run {i + 1}: {result['seconds']:.1f} s", file=sys.stderr)
            if args.steps:
                for step, seconds, start_gb, peak_gb in result["steps"]:
                    if seconds >= 1:
                        print(
                            f"  {step:60s} {seconds:6.1f} s  start {start_gb:4.1f} GB  peak {peak_gb:4.1f} GB",
                            file=sys.stderr,
                        )
        middle = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        rows.append((people, middle, statistics.median(r["reference"] for r in runs)))
    print("| people | run s | peak GB | reference s | " + " | ".join(STAGES) + " |")
    print("|---:|---:|---:|---:|" + "---:|" * len(STAGES))
    for people, run, reference in rows:
        cells = []
        for stage in STAGES:
            seconds, peak = run["stages"].get(stage, (0.0, 0.0))
            cells.append(f"{seconds:.0f} s / {peak:.1f} GB")
        print(
            f"| {people:,} | {run['seconds']:.0f} | {run['peak_gb']:.1f} | {reference:.2f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
