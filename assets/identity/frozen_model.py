"""The saved model: everything a pair's score rests on besides the two records.

A pair's match weight depends on the Splink model (m and u of every level, the prior), on
the term frequencies of the names (how common "Smith" is, computed from all records) and,
for whether the link stands, on the parts of the conflict guard's rule in force (measured on
all records). A run that scores only new records must score them with exactly what the
pairs it keeps were scored with, so all three are saved together by the run that trained
(or re-scored) and read back by the next runs (assets/identity/incremental.py):

- identity.saved_model: the model JSON (unrounded: the weights of the kept pairs to the last
  digit), the guard's parts, and a fingerprint of the model's definition in code
  (assets/identity/model.py) so that an edited model is never mixed with a saved one;
- identity.saved_term_frequencies: tf_column, value, tf; the names' values, like the
  warehouse's other tables (the catalog flags them personal).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from assets.identity.conflict_guard import GuardRule
from assets.shared.warehouse import table_exists

MODEL_TABLE = "identity.saved_model"
TERM_FREQUENCIES_TABLE = "identity.saved_term_frequencies"


@dataclass
class FrozenModel:
    model_json: dict  # Splink's settings with every parameter, as the scores used them
    term_frequencies: pa.Table  # tf_column, value, tf
    guard: GuardRule


def definition_fingerprint(settings: dict, threshold: float) -> str:
    """A hash of what the model compares and how it blocks, without its parameters: two
    runs with the same fingerprint score a pair the same way given the same parameters."""
    stripped = json.loads(json.dumps(settings, sort_keys=True, default=str))
    stripped.pop("probability_two_random_records_match", None)
    stripped.pop("linker_uid", None)
    for comparison in stripped.get("comparisons", []):
        for level in comparison.get("comparison_levels", []):
            level.pop("m_probability", None)
            level.pop("u_probability", None)
    text = json.dumps({"settings": stripped, "threshold": threshold}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_frozen(
    con: duckdb.DuckDBPyConnection,
    frozen: FrozenModel,
    fingerprint: str,
    saved_on,
    erased_records_seen: int,
) -> None:
    """Replace identity.saved_model and identity.saved_term_frequencies with `frozen`."""
    con.execute(
        f"""
        create or replace table {MODEL_TABLE} (
            model_json varchar, guard_birth_dates boolean, guard_first_names boolean,
            definition_fingerprint varchar, saved_on date, erased_records_seen bigint
        )"""
    )
    con.execute(
        f"insert into {MODEL_TABLE} values (?, ?, ?, ?, ?, ?)",
        [
            json.dumps(frozen.model_json, sort_keys=True),
            frozen.guard.birth_dates,
            frozen.guard.first_names,
            fingerprint,
            saved_on,
            erased_records_seen,
        ],
    )
    con.register("saved_term_frequencies", frozen.term_frequencies)
    con.execute(
        f"create or replace table {TERM_FREQUENCIES_TABLE} as "
        "select tf_column, value, tf from saved_term_frequencies order by tf_column, value"
    )
    con.unregister("saved_term_frequencies")


@dataclass
class SavedModel:
    frozen: FrozenModel
    fingerprint: str
    saved_on: object  # date
    erased_records_seen: int


def load_frozen(con: duckdb.DuckDBPyConnection) -> SavedModel | None:
    """The model the previous run saved, or None when the warehouse holds none."""
    if not (table_exists(con, MODEL_TABLE) and table_exists(con, TERM_FREQUENCIES_TABLE)):
        return None
    rows = con.execute(
        f"select model_json, guard_birth_dates, guard_first_names, definition_fingerprint, "
        f"saved_on, erased_records_seen from {MODEL_TABLE}"
    ).fetchall()
    if len(rows) != 1:
        return None
    model_json, birth_dates, first_names, fingerprint, saved_on, erased = rows[0]
    tf = con.sql(
        f"select tf_column, value, tf from {TERM_FREQUENCIES_TABLE} order by tf_column, value"
    ).to_arrow_table()
    return SavedModel(
        FrozenModel(json.loads(model_json), tf, GuardRule(birth_dates, first_names)),
        fingerprint,
        saved_on,
        erased,
    )
