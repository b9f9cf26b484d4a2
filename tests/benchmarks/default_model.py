"""Write assets/identity/reference/default_identity_model.json: the parameters used when a data set is
too small or too bare to train on (assets/identity/model.py, DEFAULT_MODEL).

    .venv/bin/omniloyal generate --people 20000 --seed 1001 --out /tmp/dm/inbox --end-date 2026-11-24
    .venv/bin/python -m tests.benchmarks.default_model --inbox /tmp/dm/inbox

It trains the model on a generated inbox (UK profile) the way every run does and keeps its
m- and u-probabilities. Only a fallback: a run with enough data trains its own.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import duckdb

from assets.identity.matching import match_records
from assets.identity.model import DEFAULT_MODEL
from tests.benchmarks.bench_identity import stage_prepare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inbox", type=Path, required=True)
    parser.add_argument("--phone-region", default="GB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        warehouse = Path(work) / "w.duckdb"
        stage_prepare(args.inbox, warehouse, args.phone_region)
        records = (
            duckdb.connect(str(warehouse), read_only=True)
            .sql("select * from identity.match_input")
            .to_arrow_table()
        )
    result = match_records(records)
    DEFAULT_MODEL.write_text(
        json.dumps(result.model_json, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    print(
        f"{DEFAULT_MODEL}: trained on {records.num_rows} records, {result.training.as_metadata()}"
    )


if __name__ == "__main__":
    main()
