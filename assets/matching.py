"""Probabilistic record linkage with Splink: which customer records are one person.

The model is declared as data below (comparisons, blocking rules, training plan,
thresholds), the way Splink's own examples declare it; the functions only run it.
Splink runs in its own in-memory DuckDB so its working tables never land in the
warehouse: the input is handed over as Arrow and the results come back the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

# Columns of identity.match_input that the model compares.
UNIQUE_ID = "unique_id"

def _same(column: str) -> str:
    return f'"{column}_l" = "{column}_r"'


COMPARISONS = [
    # The canonical form folds nicknames (Bob -> robert) so they count as a strong match.
    cl.CustomComparison(
        output_column_name="first_name",
        comparison_levels=[
            cll.NullLevel("first_name_key"),
            cll.ExactMatchLevel("first_name_key").configure(tf_adjustment_column="first_name_key"),
            cll.ExactMatchLevel("canonical_first_name"),
            cll.JaroWinklerLevel("first_name_key", 0.92),
            cll.JaroWinklerLevel("first_name_key", 0.80),
            cll.ElseLevel(),
        ],
    ),
    cl.NameComparison("last_name_key").configure(term_frequency_adjustments=True),
    cl.DateOfBirthComparison("birth_on", input_is_string=False),
    # Agreeing on a shared identifier (a household phone, a family mailbox or address;
    # see identity/match_input.sql) is its own level, so it never counts like a personal one.
    cl.CustomComparison(
        output_column_name="email",
        comparison_levels=[
            cll.NullLevel("email_key"),
            cll.CustomLevel(f"{_same('email_key')} and not is_shared_email_l", "Exact match on a personal mailbox"),
            cll.CustomLevel(_same("email_key"), "Exact match on a shared mailbox"),
            cll.JaroWinklerLevel("email_key", 0.88),
            cll.ElseLevel(),
        ],
    ),
    cl.CustomComparison(
        output_column_name="phone",
        comparison_levels=[
            cll.NullLevel("phone_e164"),
            cll.CustomLevel(f"{_same('phone_e164')} and not is_shared_phone_l", "Exact match on a personal phone"),
            cll.CustomLevel(_same("phone_e164"), "Exact match on a shared phone"),
            cll.ElseLevel(),
        ],
    ),
    # One comparison for the address: street and postcode are one piece of evidence.
    cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            cll.NullLevel("postcode"),
            cll.CustomLevel(
                f"{_same('postcode')} and {_same('street_key')} and not is_shared_address_l",
                "Same street and postcode, one household member",
            ),
            cll.CustomLevel(f"{_same('postcode')} and {_same('street_key')}", "Same street and postcode, shared"),
            cll.CustomLevel(_same("postcode"), "Same postcode"),
            cll.CustomLevel("split_part(postcode_l, ' ', 1) = split_part(postcode_r, ' ', 1)", "Same postcode district"),
            cll.ElseLevel(),
        ],
    ),
]

# Pairs are only scored when they share one of these; together they keep the number
# of comparisons near-linear in the number of records.
PREDICTION_BLOCKS = [
    block_on("email_key"),
    block_on("phone_e164"),
    block_on("canonical_first_name", "last_name_key"),
    block_on("last_name_key", "birth_on"),
    block_on("canonical_first_name", "birth_on"),
    block_on("birth_on", "postcode"),
]

# Rules that are almost surely matches, for estimating how often two records match at all.
DETERMINISTIC_RULES = [
    block_on("email_key"),
    block_on("canonical_first_name", "last_name_key", "birth_on"),
]
RECALL_OF_DETERMINISTIC_RULES = 0.7

# Each EM session fixes the columns it blocks on, so the others' m-values get trained.
EM_TRAINING_BLOCKS = [
    block_on("email_key"),
    block_on("phone_e164"),
    block_on("canonical_first_name", "last_name_key", "birth_on"),
]
U_SAMPLE_PAIRS = 1_000_000

# Pairs at or above this probability are evidence; clusters join records linked at it.
MATCH_THRESHOLD = 0.95


def splink_settings() -> SettingsCreator:
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name=UNIQUE_ID,
        comparisons=COMPARISONS,
        blocking_rules_to_generate_predictions=PREDICTION_BLOCKS,
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
        additional_columns_to_retain=["is_shared_phone", "is_shared_email", "is_shared_address"],
    )


@dataclass
class MatchResult:
    clusters: pa.Table  # unique_id, cluster_id
    evidence: pa.Table  # pairs at or above the threshold, with their match weights
    model_json: dict
    pairs_linked: int


def train(linker: Linker, seed: int = 42) -> None:
    """Estimate the model's parameters from the data itself (no labels)."""
    linker.training.estimate_probability_two_random_records_match(
        DETERMINISTIC_RULES, recall=RECALL_OF_DETERMINISTIC_RULES
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=U_SAMPLE_PAIRS, seed=seed)
    for block in EM_TRAINING_BLOCKS:
        linker.training.estimate_parameters_using_expectation_maximisation(block)


def match_records(records: pa.Table, threshold: float = MATCH_THRESHOLD, seed: int = 42) -> MatchResult:
    """Train the model on `records` (identity.match_input) and cluster them into people."""
    # Splink warns about every level EM could not train; a pipeline log wants errors only.
    logging.getLogger("splink").setLevel(logging.ERROR)
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(records, table_name="match_input"), splink_settings(), log_level=logging.ERROR)
    train(linker, seed=seed)
    predictions = linker.inference.predict(threshold_match_probability=threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, threshold)
    evidence = predictions.as_pandas_dataframe()
    return MatchResult(
        clusters=pa.Table.from_pandas(
            clusters.as_pandas_dataframe()[[UNIQUE_ID, "cluster_id"]], preserve_index=False
        ),
        evidence=pa.Table.from_pandas(evidence, preserve_index=False),
        model_json=linker.misc.save_model_to_json(),
        pairs_linked=len(evidence),
    )
