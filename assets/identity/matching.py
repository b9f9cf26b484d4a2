"""Probabilistic record linkage with Splink: which customer records are one person.

The model is declared as data in assets/identity/model.py; this module runs it:

1. plan the training on what the data carries (a block with too few pairs is skipped and
   reported; data too small or too bare falls back to the default model's parameters);
2. train: u by random sampling, m by expectation maximisation over the planned blocks,
   a first prior from near-certain rules;
3. score the candidate pairs, then re-estimate the prior on them (the share of pairs that
   match, from the model's own probabilities) so the threshold means the same at any size;
4. link pairs at the threshold, apply stewards' decisions and the conflict guard, cluster.

Splink runs in its own DuckDB (a scratch file, removed afterwards) so its working tables
never land in the warehouse: the input is handed over as Arrow and the results come back
the same way.
With identity_engine = spark, training and scoring (2 and 3's scoring) run on Spark
instead and the scored pairs come back as Parquet; all the rest stays on that DuckDB
(assets/identity/engines.py).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

from assets.identity.charts import write_offline_chart
from assets.identity.conflict_guard import (
    GuardRule,
    ensure_steward_tables,
    guard_against_conflicts,
    measure_rule,
    use_rule,
)
from assets.identity.engines import DuckDBEngine, SparkEngine, scoring_engine
from assets.identity.frozen_model import FrozenModel
from assets.identity.model import (
    COMPARISONS,
    DEFAULT_MODEL,
    DETERMINISTIC_RULES,
    EXACTLY_COUNTED_LEVELS,
    IDENTIFYING_COLUMNS,
    MATCH_THRESHOLD,
    MIN_RECORDS_TO_TRAIN,
    MIN_TRAINING_PAIRS,
    NAME_BLOCK_KEY,
    PREDICTION_BLOCKS,
    RECALL_OF_DETERMINISTIC_RULES,
    SCORE_FLOOR,
    SPLINK_MEMORY_LIMIT,
    TRAINING_BLOCKS,
    U_SAMPLE_PAIRS,
    UNIQUE_ID,
)
from assets.shared.warehouse import SPLINK_SCRATCH_FILE, SPLINK_SCRATCH_PREFIX

# identity.match_evidence: each scored pair with the weight (log2 Bayes factor) every
# field contributed, term-frequency adjustments included, and the blocking rule that
# proposed it. match_weight and match_probability carry the re-estimated prior.
# Rounded to 6 decimals: DuckDB's parallel sums vary in the last bits from run to run,
# and a rerun on unchanged data must publish the same table.
SCORED_SELECT = """
select
    unique_id_l,
    unique_id_r,
    match_weight,
    mw_name + coalesce(mw_tf_adj_name, 0) as name_weight,
    mw_birth_on as birth_date_weight,
    mw_email as email_weight,
    mw_phone as phone_weight,
    mw_address as address_weight,
    cast(match_key as integer) as blocking_rule,
    gamma_name, gamma_birth_on, gamma_email, gamma_phone, gamma_address
from {predictions}
"""
COMPARED = {
    "name": "name_weight",
    "birth_on": "birth_date_weight",
    "email": "email_weight",
    "phone": "phone_weight",
    "address": "address_weight",
}
EVIDENCE_COLUMNS = """
    unique_id_l varchar, unique_id_r varchar, match_probability double, match_weight double,
    name_weight double, birth_date_weight double, email_weight double, phone_weight double,
    address_weight double, blocking_rule integer, link_source varchar, is_linked boolean, cut_by varchar
"""


def splink_settings() -> SettingsCreator:
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name=UNIQUE_ID,
        comparisons=COMPARISONS,
        blocking_rules_to_generate_predictions=PREDICTION_BLOCKS,
        retain_intermediate_calculation_columns=True,
        retain_matching_columns=True,
    )


@dataclass
class TrainingReport:
    """What the training did with the data at hand, for the log and the asset metadata."""

    records: int = 0
    trained_on: list[str] = field(default_factory=list)  # EM blocks used
    skipped: dict[str, str] = field(default_factory=dict)  # EM block -> why not
    parameters: str = "trained"  # trained | default (too small or too bare) | saved model | none
    prior: float | None = (
        None  # probability two random records match, re-estimated on the scored pairs
    )
    first_prior: float | None = None  # the first guess, from near-certain rules
    u_sampled: bool = False  # u estimated by random sampling on this run's records (then corrected)
    warnings: list[str] = field(default_factory=list)
    steps: dict[str, str] = field(
        default_factory=dict
    )  # step -> seconds and the process's peak memory after it

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        self.steps[name] = f"{time.perf_counter() - started:.1f} s, peak {peak_gb:.2f} GB"

    def as_metadata(self) -> dict:
        return {
            "records": self.records,
            "parameters": self.parameters,
            "em_blocks_trained": self.trained_on,
            "em_blocks_skipped": self.skipped,
            "prior": self.prior,
            "first_prior": self.first_prior,
            "warnings": self.warnings,
            "steps": self.steps,
        }


@dataclass
class MatchResult:
    clusters: pa.Table  # unique_id, cluster_id
    evidence: pa.Table  # pairs at or above the threshold (and stewards' links), with their weights
    model_json: dict | None
    pairs_linked: int
    training: TrainingReport
    guard: GuardRule = field(default_factory=GuardRule)  # the conflict rule's parts in force
    charts: dict[str, Path] = field(
        default_factory=dict
    )  # chart name -> HTML file, when a charts folder was given
    # What the scores rest on besides the records (model, term frequencies, guard rule), for
    # the next runs to score new records with (assets/identity/incremental.py); None when
    # nothing was scored.
    frozen: FrozenModel | None = None


def _block_name(columns: tuple[str, ...]) -> str:
    return " + ".join(columns)


def count_pairs(con: duckdb.DuckDBPyConnection, columns: tuple[str, ...]) -> int:
    """Record pairs that agree on all `columns` (none null): the pairs a block yields."""
    present = " and ".join(f"{c} is not null" for c in columns)
    return con.execute(
        f"select cast(coalesce(sum(n * (n - 1) / 2), 0) as bigint) from "
        f"(select count(*) as n from records where {present} group by {', '.join(columns)})"
    ).fetchall()[0][0]


def plan_training(con: duckdb.DuckDBPyConnection, report: TrainingReport) -> list[tuple[str, ...]]:
    """The EM blocks worth training on: those with MIN_TRAINING_PAIRS pairs or more.

    Decided before training: Splink drops the comparison it trains on and does not
    restore it when a session fails, so a session must never be started that cannot run.
    """
    plan = []
    for columns in TRAINING_BLOCKS:
        pairs = count_pairs(con, columns)
        if pairs >= MIN_TRAINING_PAIRS:
            plan.append(columns)
            report.trained_on.append(_block_name(columns))
        else:
            report.skipped[_block_name(columns)] = (
                f"{pairs} record pairs, fewer than {MIN_TRAINING_PAIRS}"
            )
    return plan


def default_parameters(settings: dict) -> dict:
    """`settings` with the m and u probabilities of the default model, level by level.

    A level takes the default's parameters only where the default model has a level of the
    same comparison, position and label, so an edited model never gets stale numbers.
    """
    saved = json.loads(DEFAULT_MODEL.read_text(encoding="utf-8"))
    levels = {
        (comparison["output_column_name"], i, level.get("label_for_charts")): level
        for comparison in saved["comparisons"]
        for i, level in enumerate(comparison["comparison_levels"])
    }
    for comparison in settings["comparisons"]:
        for i, level in enumerate(comparison["comparison_levels"]):
            default = levels.get(
                (comparison["output_column_name"], i, level.get("label_for_charts"))
            )
            if default and not level.get("is_null_level"):
                for key in ("m_probability", "u_probability"):
                    if key in default:
                        level[key] = default[key]
    settings["probability_two_random_records_match"] = saved["probability_two_random_records_match"]
    return settings


def rounded(model: dict, digits: int = 8) -> dict:
    """The model with its probabilities rounded, so two runs on the same data save the
    same file: DuckDB's parallel sums vary in the last bits of a float."""
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            for key in ("m_probability", "u_probability"):
                if isinstance(level.get(key), float):
                    level[key] = float(f"{level[key]:.{digits}g}")
    model["probability_two_random_records_match"] = float(
        f"{model['probability_two_random_records_match']:.{digits}g}"
    )
    return model


def train(
    linker: Linker, con: duckdb.DuckDBPyConnection, report: TrainingReport, seed: int = 42
) -> None:
    """Estimate the model's parameters from the data itself (no labels), on the blocks it has."""
    rules = [columns for columns in DETERMINISTIC_RULES if count_pairs(con, columns) > 0]
    if rules:
        linker.training.estimate_probability_two_random_records_match(
            [block_on(*columns) for columns in rules], recall=RECALL_OF_DETERMINISTIC_RULES
        )
    if report.records < MIN_RECORDS_TO_TRAIN:
        report.parameters = "default"
        report.warnings.append(
            f"{report.records} records are too few to train on (fewer than {MIN_RECORDS_TO_TRAIN}): "
            "the default model's parameters are used"
        )
        return
    linker.training.estimate_u_using_random_sampling(max_pairs=U_SAMPLE_PAIRS, seed=seed)
    report.u_sampled = True
    plan = plan_training(con, report)
    if not plan:
        report.parameters = "default"
        report.warnings.append(
            "no identifier is shared by enough records to train on: the default model's m-probabilities are used"
        )
    for columns in plan:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*columns))


def logit2(p: float) -> float:
    return math.log2(p / (1 - p))


class Recalibration:
    """Prior and u-probabilities re-estimated together on the scored pairs.

    Splink estimates u from random pairs, which include some that match (a share equal to
    the prior); for a strong identifier they are most of the random pairs that agree, so
    agreeing on a phone would be worth no more than the prior on any data set. The sampled
    share of a level is prior * m + (1 - prior) * u, hence u = (share - prior * m) / (1 - prior).
    The prior in turn is the expected number of matching pairs (the sum of the scored
    pairs' match probabilities, pairs outside the blocks counting as non-matches) over all
    pairs. Both are iterated to their fixed point: the EM update of the prior and u with
    m held. Where a level's remainder is below what the sample can see, its u is half of
    one sampled pair. Levels with a term-frequency adjustment take u from the value's
    frequency, so they are left as they are.
    """

    def __init__(
        self,
        model: dict,
        sampled_pairs: float,
        adjust_u: bool = True,
        counted_shares: dict[str, float] | None = None,
    ):
        self.model = model
        self.floor = 0.5 / max(sampled_pairs, 1)
        self.comparisons = []  # (output column, [(gamma, m, share, is adjustable, sampled share)])
        counted_shares = counted_shares or {}
        for comparison in model["comparisons"]:
            levels = [
                level for level in comparison["comparison_levels"] if not level.get("is_null_level")
            ]
            rows = []
            for i, level in enumerate(levels):
                m, sampled = level.get("m_probability"), level.get("u_probability")
                adjustable = (
                    adjust_u
                    and isinstance(m, float)
                    and isinstance(sampled, float)
                    and not level.get("tf_adjustment_column")
                )
                share = counted_shares.get(level.get("label_for_charts"), sampled)
                rows.append((len(levels) - 1 - i, m, share, adjustable, sampled))
            self.comparisons.append((comparison["output_column_name"], rows))

    def u(self, prior: float) -> dict[tuple[str, int], float]:
        """u of every adjustable level (the else level takes up the rest), at `prior`."""
        result = {}
        for name, rows in self.comparisons:
            for gamma, m, share, adjustable, _ in rows[:-1]:
                if adjustable:
                    result[(name, gamma)] = max(
                        (share - prior * m) / (1 - prior), min(share, self.floor)
                    )
            gamma, m, share, adjustable, _ = rows[-1]
            if adjustable:
                moved = sum(sampled - result[(name, g)] for g, _, _, a, sampled in rows[:-1] if a)
                result[(name, gamma)] = share + moved
        return result

    def shifts(self, prior: float) -> dict[tuple[str, int], float]:
        """log2 change of each level's Bayes factor from the sampled u to the corrected one."""
        shares = {
            (name, gamma): sampled
            for name, rows in self.comparisons
            for gamma, _, _, a, sampled in rows
            if a
        }
        return {key: math.log2(shares[key] / value) for key, value in self.u(prior).items()}

    def fit(
        self,
        gammas: dict[str, np.ndarray],
        bayes_log2: np.ndarray,
        total_pairs: float,
        first: float,
        rounds: int = 200,
    ) -> float:
        """The fixed-point prior; `bayes_log2` is each pair's Bayes factor at the sampled u."""
        prior = first
        for _ in range(rounds):
            shift = np.zeros_like(bayes_log2)
            for (name, gamma), value in self.shifts(prior).items():
                shift += np.where(gammas[name] == gamma, value, 0.0)
            probabilities = 1.0 / (1.0 + np.exp2(-(bayes_log2 + shift + logit2(prior))))
            updated = min(max(float(probabilities.sum()) / total_pairs, 1e-12), 0.5)
            if abs(updated - prior) <= 1e-5 * prior:
                return updated
            prior = updated
        return prior

    def exact_model(self, prior: float) -> dict:
        """A copy of the model with the corrected u and the prior, unrounded: a pair scored
        again by a later run must get the weight this run gave it to the last digit
        (assets/identity/incremental.py)."""
        model = copy.deepcopy(self.model)
        corrected = self.u(prior)
        for comparison in model["comparisons"]:
            levels = [
                level for level in comparison["comparison_levels"] if not level.get("is_null_level")
            ]
            for i, level in enumerate(levels):
                key = (comparison["output_column_name"], len(levels) - 1 - i)
                if key in corrected:
                    level["u_probability"] = corrected[key]
        model["probability_two_random_records_match"] = prior
        model.pop("linker_uid", None)
        return model

    def model_at(self, prior: float) -> dict:
        """The model with the corrected u and the prior, rounded as the saved file has it."""
        return rounded(self.exact_model(prior))


def counted_shares(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """The exact share of record pairs at each EXACTLY_COUNTED_LEVELS level, among the pairs
    with both values present (as Splink's u is)."""
    shares = {}
    for label, (column, condition) in EXACTLY_COUNTED_LEVELS.items():
        agreeing, present = con.execute(
            f"""
            select
                (select coalesce(sum(n * (n - 1) / 2), 0) from
                    (select count(*) as n from records where {column} is not null and {condition} group by {column})),
                (select count({column}) from records)
            """
        ).fetchall()[0]
        if present > 1:
            shares[label] = float(agreeing) / (present * (present - 1) / 2)
    return shares


def _fitted_prior(
    con: duckdb.DuckDBPyConnection,
    recalibration: Recalibration,
    total_pairs: float,
    first_prior: float,
) -> float:
    """Recalibration.fit over the candidate pairs' gammas and weights (numbers only: at a
    million people there are millions of pairs)."""
    columns = con.execute(
        f"select match_weight, {', '.join(f'gamma_{name}' for name in COMPARED)} from candidates"
    ).fetchnumpy()
    gammas = {name: np.asarray(columns[f"gamma_{name}"]) for name in COMPARED}
    bayes = np.asarray(columns["match_weight"], dtype=float) - logit2(first_prior)
    return float(f"{recalibration.fit(gammas, bayes, total_pairs, first_prior):.8g}")


def register_term_frequencies(
    linker: Linker, con: duckdb.DuckDBPyConnection, db_api: DuckDBAPI, prior: float, records: int
) -> pa.Table:
    """Term frequencies of the records (term_frequencies), registered with the linker; returned
    so that the run can save them with the model."""
    table = term_frequencies(linker.misc.save_model_to_json(), con, prior, records)
    register_saved_term_frequencies(linker, db_api, table)
    return table


def term_frequencies(
    model: dict, con: duckdb.DuckDBPyConnection, prior: float, records: int
) -> pa.Table:
    """Term frequencies without the record itself and its own duplicates, one row per
    (tf_column, value, tf).

    Splink's u for agreeing on a value is the value's share of the records. That share
    counts the record itself and the other records of its own person, which are matches:
    a name only one person has, on two records, would weigh like a name two people share.
    Here a value's u counts the other records holding it, less the expected duplicates
    of the same person that carry it (prior * (records - 1) duplicates per record, each
    carrying the value as often as a match agrees on the full name); at least half a record.
    """
    carried = next(
        (
            level.get("m_probability")
            for comparison in model["comparisons"]
            for level in comparison["comparison_levels"]
            if level.get("tf_adjustment_column") == "full_name_key"
        ),
        None,
    )
    own_duplicates = prior * (records - 1) * (carried if isinstance(carried, float) else 1.0)
    parts = [
        f"""
        select '{column}' as tf_column, {column} as value,
               greatest(count(*) - 1 - {own_duplicates!r}, 0.5) / sum(count(*)) over () as tf
        from records where {column} is not null group by {column}
        """
        for column in ("last_name_key", "canonical_first_name")
    ]
    # A whole name's own count says little when it is small (a name only one person has is
    # seen once or twice); then the chance that another person has it is at least that of
    # its first and last name meeting by chance, the product of their shares.
    full_name = f"""
        with
        named as (select * from records where full_name_key is not null),
        firsts as (select canonical_first_name, count(*) / sum(count(*)) over () as share from named group by all),
        lasts as (select last_name_key, count(*) / sum(count(*)) over () as share from named group by all),
        names as (
            select full_name_key, any_value(canonical_first_name) as canonical_first_name,
                   any_value(last_name_key) as last_name_key, count(*) as holders
            from named group by all
        )
        select
            'full_name_key' as tf_column,
            names.full_name_key as value,
            greatest((holders - 1 - {own_duplicates!r}) / sum(holders) over (), firsts.share * lasts.share) as tf
        from names
        join firsts using (canonical_first_name)
        join lasts using (last_name_key)
    """
    return con.sql(
        " union all ".join(f"({part})" for part in [*parts, full_name])
        + " order by tf_column, value"
    ).to_arrow_table()


def register_saved_term_frequencies(linker: Linker, db_api: DuckDBAPI, table: pa.Table) -> None:
    """Register `table` (tf_column, value, tf: term_frequencies) as the linker's lookups."""
    con = duckdb.connect()
    try:
        con.register("term_frequencies", table)
        for column in ("last_name_key", "canonical_first_name", "full_name_key"):
            lookup = con.sql(
                f"select value as {column}, tf as tf_{column} from term_frequencies "
                f"where tf_column = '{column}'"
            ).to_arrow_table()
            linker.table_management.register_term_frequency_lookup(db_api.register(lookup), column)
    finally:
        con.close()


def scored_sql(shifts: dict[tuple[str, int], float], prior_shift: float, threshold: float) -> str:
    """Table `scored`: the candidate pairs at or above `threshold`, their weights moved from the
    sampled u and first prior to the recalibrated ones (Recalibration.shifts), in SQL."""
    level_shift = {}
    for name in COMPARED:
        cases = " ".join(
            f"when gamma_{name} = {gamma} then {value!r}"
            for (n, gamma), value in shifts.items()
            if n == name
        )
        level_shift[name] = f"(case {cases} else 0 end)" if cases else "0"
    return f"""
        create table scored as
        with recalibrated as (
            select
                unique_id_l, unique_id_r,
                match_weight + {prior_shift!r} + {" + ".join(level_shift.values())} as match_weight,
                {", ".join(f"{column} + {level_shift[name]} as {column}" for name, column in COMPARED.items())},
                blocking_rule
            from candidates
        )
        select
            unique_id_l, unique_id_r,
            round(1 / (1 + pow(2, -match_weight)), 6) as match_probability,
            round(match_weight, 6) as match_weight,
            {", ".join(f"round({column}, 6) as {column}" for column in COMPARED.values())},
            blocking_rule
        from recalibrated
        where match_weight >= {logit2(threshold)!r}
    """


def _empty_result(report: TrainingReport) -> MatchResult:
    con = duckdb.connect()
    con.execute(f"create table evidence ({EVIDENCE_COLUMNS})")
    return MatchResult(
        clusters=pa.table(
            {"unique_id": pa.array([], pa.string()), "cluster_id": pa.array([], pa.string())}
        ),
        evidence=con.sql("select * from evidence").to_arrow_table(),
        model_json=None,
        pairs_linked=0,
        training=report,
    )


@contextmanager
def splink_connection(
    memory_limit: str, spill_dir: Path | None
) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
    """Splink's own DuckDB: a scratch database file in a folder made under `spill_dir` (the
    system's temporary folder when None), holding at most `memory_limit` in memory and
    removed afterwards.

    A file, not an in-memory database: an in-memory database keeps every table it creates
    (the records, the scored candidate pairs, the links) in memory, while a file's tables
    are evicted to disk when the limit is reached. At 1M people the process's peak while
    matching fell from 4.6 to 3.8 GB, and what it kept between steps from 3.2 to 1.5 GB
    (docs/benchmarks.md).
    """
    with (
        tempfile.TemporaryDirectory(prefix=SPLINK_SCRATCH_PREFIX, dir=spill_dir) as spill,
        duckdb.connect(str(Path(spill) / SPLINK_SCRATCH_FILE)) as con,
    ):
        con.execute(f"set memory_limit = '{memory_limit}'")
        con.execute(f"set temp_directory = '{spill}'")
        yield con, Path(spill)


def match_records(
    records: pa.Table,
    threshold: float = MATCH_THRESHOLD,
    seed: int = 42,
    model: Path | None = None,
    charts_dir: Path | None = None,
    must_link: pa.Table | None = None,
    cannot_link: pa.Table | None = None,
    guard: GuardRule | None = None,
    memory_limit: str = SPLINK_MEMORY_LIMIT,
    spill_dir: Path | None = None,
    frozen: FrozenModel | None = None,
    engine: str = "duckdb",
    spark_master: str = "local[*]",
) -> MatchResult:
    """Cluster `records` (identity.match_input) into people.

    The model is trained on the records themselves, or read from `model` (a JSON file
    saved by an earlier run) to skip training. `must_link` and `cannot_link` (columns
    unique_id_l, unique_id_r) are stewards' decisions, honoured over any score. With
    `charts_dir`, Splink's charts are written there as HTML. The conflict guard's rule is
    measured on the records unless `guard` fixes it (benchmarks compare its parts). Splink's
    DuckDB holds at most `memory_limit` and spills beyond it to a folder made under
    `spill_dir` (the system's temporary folder when None), removed afterwards. With `frozen`
    (a model saved by an earlier run with its term frequencies and guard rule), every pair
    is scored again with exactly what that run scored with: no training, nothing measured.
    `engine` is where Splink trains and scores pairs: "duckdb" (that same DuckDB) or
    "spark" (at `spark_master`; assets/identity/engines.py).
    """
    # Splink warns about every level EM could not train; a pipeline log wants errors only.
    logging.getLogger("splink").setLevel(logging.ERROR)
    with splink_connection(memory_limit, spill_dir) as (con, spill):
        with scoring_engine(
            engine, con, spill, splink_settings(), memory_limit, spark_master
        ) as scoring:
            return _match(
                con,
                records,
                threshold,
                seed,
                model,
                charts_dir,
                must_link,
                cannot_link,
                guard,
                scoring,
                frozen,
            )


def _match(
    con: duckdb.DuckDBPyConnection,
    records: pa.Table,
    threshold: float,
    seed: int,
    model: Path | None,
    charts_dir: Path | None,
    must_link: pa.Table | None,
    cannot_link: pa.Table | None,
    guard: GuardRule | None,
    scoring: DuckDBEngine | SparkEngine,
    frozen: FrozenModel | None = None,
) -> MatchResult:
    con.register("match_input_records", records)
    con.execute(
        f"create table records as select *, {NAME_BLOCK_KEY} as name_block_key from match_input_records"
    )
    con.unregister("match_input_records")
    _load_decisions(con, must_link, cannot_link)
    guard = guard or (frozen.guard if frozen is not None else measure_rule(con))
    use_rule(con, guard)
    identifying = " or ".join(f"{c} is not null" for c in IDENTIFYING_COLUMNS)
    report = TrainingReport(records=records.num_rows)
    usable = con.execute(f"select count(*) from records where {identifying}").fetchall()[0][0]
    if usable < 2:
        report.parameters = "none"
        report.warnings.append(
            f"{usable} of {records.num_rows} records carry a name, e-mail, phone, birth date or postcode: "
            "nothing to match on, every record is a customer of its own"
        )
        if not con.execute("select count(*) from must_link").fetchall()[0][0]:
            return _empty_result(report)

    db_api = scoring.db_api  # Splink's engine; post-processing runs on scoring.duckdb_api
    # On DuckDB the records table itself (with name_block_key), not a second copy of the input.
    source = db_api.register(
        "records"
        if scoring.dialect == "duckdb"
        else con.sql("select * from records").to_arrow_table(),
        table_name="match_input",
    )
    if frozen is not None:
        linker = Linker(source, copy.deepcopy(frozen.model_json), log_level=logging.ERROR)
        report.parameters = "saved model"
    elif model is not None:
        linker = Linker(source, scoring.model_settings(model), log_level=logging.ERROR)
        report.parameters = "saved model"
    else:
        settings = default_parameters(splink_settings().create_settings_dict(scoring.dialect))
        linker = Linker(source, settings, log_level=logging.ERROR)
        with report.step("train"):
            train(linker, con, report, seed=seed)
        linker = Linker(source, rounded(linker.misc.save_model_to_json()), log_level=logging.ERROR)
    first_prior = linker.misc.save_model_to_json()["probability_two_random_records_match"]
    report.first_prior = first_prior
    if frozen is not None:
        register_saved_term_frequencies(linker, db_api, frozen.term_frequencies)
        tf_table = frozen.term_frequencies
    else:
        tf_table = register_term_frequencies(linker, con, db_api, first_prior, records.num_rows)

    # Pairs far below the threshold at the first prior can reach it only with a much larger
    # prior or u-correction; SCORE_FLOOR keeps enough of them to re-estimate both.
    with report.step("predict"):
        predictions = linker.inference.predict(threshold_match_probability=SCORE_FLOOR)
        scoring.load_candidates(con, SCORED_SELECT.format(predictions=predictions.physical_name))
    sampled_pairs = min(U_SAMPLE_PAIRS, records.num_rows * (records.num_rows - 1) / 2)
    recalibration = Recalibration(
        linker.misc.save_model_to_json(),
        sampled_pairs,
        adjust_u=report.u_sampled,
        counted_shares=counted_shares(con),
    )
    if model is None and frozen is None:
        with report.step("recalibrate"):
            prior = _fitted_prior(
                con, recalibration, records.num_rows * (records.num_rows - 1) / 2, first_prior
            )
    else:
        prior = first_prior
    report.prior = prior
    shifts = recalibration.shifts(prior)
    # Saved in DuckDB's SQL whichever engine scored (incremental runs score on DuckDB).
    scored_with = FrozenModel(scoring.portable(recalibration.exact_model(prior)), tf_table, guard)
    model_json = recalibration.model_at(prior)
    con.execute(scored_sql(shifts, logit2(prior) - logit2(first_prior), threshold))
    con.execute("create table links as select unique_id_l, unique_id_r, match_weight from scored")
    linker = Linker(source, model_json, log_level=logging.ERROR)

    with report.step("guard and cluster"):
        guarded = guard_against_conflicts(con, scoring.duckdb_api)
    charts = (
        write_charts(linker, predictions, db_api, scoring.splink_table(con, guarded), charts_dir)
        if charts_dir
        else {}
    )
    saved = scoring.portable(linker.misc.save_model_to_json())
    saved.pop(
        "linker_uid", None
    )  # a random name per Linker: two runs on the same data save the same file
    return MatchResult(
        clusters=con.sql(
            f"select unique_id, cluster_id from {guarded} order by unique_id"
        ).to_arrow_table(),
        evidence=con.sql(EVIDENCE_SQL).to_arrow_table(),
        model_json=saved,
        pairs_linked=con.execute("select count(*) from links").fetchall()[0][0],
        training=report,
        guard=guard,
        charts=charts,
        frozen=scored_with,
    )


# Every scored pair and every steward's pair, whether it links its records and if not, why.
EVIDENCE_SQL = """
with
pairs as (
    select * from scored
    union all by name
    select unique_id_l, unique_id_r from must_link anti join scored using (unique_id_l, unique_id_r)
    union all by name
    select unique_id_l, unique_id_r from cannot_link anti join scored using (unique_id_l, unique_id_r)
)
select
    pairs.unique_id_l, pairs.unique_id_r, pairs.match_probability, pairs.match_weight,
    pairs.name_weight, pairs.birth_date_weight, pairs.email_weight, pairs.phone_weight,
    pairs.address_weight, pairs.blocking_rule,
    case when must_link.unique_id_l is not null then 'steward' else 'model' end as link_source,
    links.unique_id_l is not null as is_linked,
    case
        when links.unique_id_l is not null then null
        when cannot_link.unique_id_l is not null then 'steward'
        else 'conflict guard'
    end as cut_by
from pairs
left join links using (unique_id_l, unique_id_r)
left join must_link using (unique_id_l, unique_id_r)
left join cannot_link using (unique_id_l, unique_id_r)
order by pairs.unique_id_l, pairs.unique_id_r
"""


def _load_decisions(
    con: duckdb.DuckDBPyConnection, must_link: pa.Table | None, cannot_link: pa.Table | None
) -> None:
    """Stewards' pairs, each once with unique_id_l < unique_id_r."""
    ensure_steward_tables(con)
    for table, pairs in (("must_link", must_link), ("cannot_link", cannot_link)):
        if pairs is None or pairs.num_rows == 0:
            continue
        con.register("decided", pairs)
        con.execute(
            f"insert into {table} select distinct least(unique_id_l, unique_id_r), greatest(unique_id_l, unique_id_r) "
            "from decided where unique_id_l <> unique_id_r"
        )
        con.unregister("decided")


def write_charts(
    linker: Linker, predictions, db_api: DuckDBAPI, clusters: str, folder: Path
) -> dict[str, Path]:
    """Splink's model charts, a waterfall of sample pairs and the cluster studio, as HTML.

    The waterfall hides record values; the cluster studio shows records, so the folder
    holds personal data like the warehouse does. Every file carries its JavaScript, so
    the charts show without a network (assets/identity/charts.py).
    """
    folder.mkdir(parents=True, exist_ok=True)
    charts = {
        "match_weights": linker.visualisations.match_weights_chart(),
        "m_u_parameters": linker.visualisations.m_u_parameters_chart(),
        "waterfall": linker.visualisations.waterfall_chart(
            predictions.as_record_list(limit=20), remove_sensitive_data=True
        ),
    }
    paths = {}
    for name, chart in charts.items():
        paths[name] = folder / f"{name}.html"
        write_offline_chart(chart, paths[name])
    paths["cluster_studio"] = folder / "cluster_studio.html"
    linker.visualisations.cluster_studio_dashboard(
        predictions,
        db_api.table_to_splink_dataframe("guarded_clusters", clusters),
        str(paths["cluster_studio"]),
        sampling_method="by_cluster_size",
        sample_size=10,
        overwrite=True,
    )
    return paths
