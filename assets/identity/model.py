"""The identity model, declared as data: what Splink compares, which pairs it scores,
how it is trained, and when two records are one person.

assets/identity/matching.py runs it; nothing here depends on any one data set. Columns are
those of identity.match_input.
"""

from __future__ import annotations

from pathlib import Path

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import block_on

UNIQUE_ID = "unique_id"

# The model's parameters when the data is too small or too bare to train on: m and u
# probabilities of every level below, saved from a run on generated data. Only the
# levels' order and labels are read from it; see default_parameters() in matching.py.
DEFAULT_MODEL = Path(__file__).resolve().parent / "reference" / "default_identity_model.json"


def _same(column: str) -> str:
    return f'"{column}_l" = "{column}_r"'


def _duckdb_level(sql_condition: str, label: str) -> cll.CustomLevel:
    """A level whose condition is written in DuckDB's SQL. Splink translates it when the
    model runs on Spark (identity_engine = spark; assets/identity/engines.py): without the
    dialect named, Spark would read "email_key_l" as a string and never see two agree."""
    return cll.CustomLevel(sql_condition, label, base_dialect_str="duckdb")


COMPARISONS = [
    # The whole name as one comparison, as Splink's ForenameSurnameComparison does, so the
    # term-frequency adjustment sees how rare the name is as a pair. The exact level is on
    # the nickname-folded form (Bob Smith = Robert Smith).
    cl.CustomComparison(
        output_column_name="name",
        comparison_levels=[
            cll.Or(cll.NullLevel("canonical_first_name"), cll.NullLevel("last_name_key")),
            cll.ExactMatchLevel("full_name_key").configure(tf_adjustment_column="full_name_key"),
            cll.ColumnsReversedLevel("first_name_key", "last_name_key", symmetrical=True),
            # Swapped and mistyped ('shephsrdson jacob' / 'jacob shepherdson').
            _duckdb_level(
                "jaro_winkler_similarity(first_name_key_l, last_name_key_r) >= 0.88 "
                "and jaro_winkler_similarity(last_name_key_l, first_name_key_r) >= 0.88",
                "First and last name swapped, nearly the same",
            ),
            cll.And(
                cll.JaroWinklerLevel("first_name_key", 0.92),
                cll.JaroWinklerLevel("last_name_key", 0.92),
            ),
            cll.And(
                cll.JaroWinklerLevel("first_name_key", 0.80),
                cll.JaroWinklerLevel("last_name_key", 0.88),
            ),
            cll.ExactMatchLevel("last_name_key").configure(tf_adjustment_column="last_name_key"),
            cll.ExactMatchLevel("canonical_first_name").configure(
                tf_adjustment_column="canonical_first_name"
            ),
            cll.ElseLevel(),
        ],
    ),
    cl.DateOfBirthComparison("birth_on", input_is_string=False),
    # Agreeing on a shared identifier (a household phone, a family mailbox or address;
    # see identity/match_input.sql) is its own level, so it never counts like a personal one.
    cl.CustomComparison(
        output_column_name="email",
        comparison_levels=[
            cll.NullLevel("email_key"),
            _duckdb_level(
                f"{_same('email_key')} and not is_shared_email_l",
                "Exact match on a personal mailbox",
            ),
            _duckdb_level(_same("email_key"), "Exact match on a shared mailbox"),
            cll.JaroWinklerLevel("email_key", 0.88),
            cll.ElseLevel(),
        ],
    ),
    cl.CustomComparison(
        output_column_name="phone",
        comparison_levels=[
            cll.NullLevel("phone_e164"),
            _duckdb_level(
                f"{_same('phone_e164')} and not is_shared_phone_l",
                "Exact match on a personal phone",
            ),
            _duckdb_level(_same("phone_e164"), "Exact match on a shared phone"),
            # A mistyped digit or two swapped digits: data entry at a till or on the phone.
            cll.DamerauLevenshteinLevel("phone_e164", 1),
            cll.ElseLevel(),
        ],
    ),
    # One comparison for the address: street and postcode are one piece of evidence.
    cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            cll.NullLevel("postcode"),
            _duckdb_level(
                f"{_same('postcode')} and {_same('street_key')} and not is_shared_address_l",
                "Same street and postcode, one household member",
            ),
            _duckdb_level(
                f"{_same('postcode')} and {_same('street_key')}", "Same street and postcode, shared"
            ),
            _duckdb_level(
                f"{_same('postcode')} and jaro_winkler_similarity(street_key_l, street_key_r) >= 0.88",
                "Same postcode, street nearly the same",
            ),
            _duckdb_level(_same("postcode"), "Same postcode"),
            _duckdb_level(
                "split_part(postcode_l, ' ', 1) = split_part(postcode_r, ' ', 1)",
                "Same postcode district",
            ),
            cll.ElseLevel(),
        ],
    ),
]

# Levels whose chance agreement is counted exactly rather than sampled: the pairs of
# records carrying the same value (sum of n * (n - 1) / 2 over the values) over the pairs
# with both values present. Sampling a million pairs sees a few dozen of these, too few to
# take the matching pairs out of (matching.Recalibration). label -> (column, shared flag).
EXACTLY_COUNTED_LEVELS = {
    "Exact match on a personal phone": ("phone_e164", "not is_shared_phone"),
    "Exact match on a shared phone": ("phone_e164", "is_shared_phone"),
    "Exact match on a personal mailbox": ("email_key", "not is_shared_email"),
    "Exact match on a shared mailbox": ("email_key", "is_shared_email"),
}

# A first and last name is a block of its own only while at most this many records carry
# it. Every record with the name pairs with every other, so a common name grows with the
# square of the data: at 200k people the generator's names gave 6.7M pairs (four fifths of
# all), at 1M people twenty-five times that. Past the cap, records of a common name still
# meet through the other blocks (e-mail, phone, birth date with either name, postcode);
# a common name alone is weak evidence anyway. Measured (docs/identity.md): F1 unchanged on
# FEBRL 1-3 and both 20k profiles; at 200k people 0.9673 uncapped, 0.9676 at 50, 0.9685 at 20.
NAME_BLOCK_MAX_RECORDS = 20
# The column the name block uses, computed over all records when matching starts
# (matching._match): null past the cap or when either name is missing.
NAME_BLOCK_KEY = (
    f"case when count(*) over (partition by canonical_first_name, last_name_key) "
    f"<= {NAME_BLOCK_MAX_RECORDS} then canonical_first_name || '|' || last_name_key end"
)

# Pairs are only scored when they share one of these; together they keep the number
# of comparisons near-linear in the number of records (each block's size is bounded by
# how many records one person or one household has, or by the cap above).
PREDICTION_BLOCKS = [
    block_on("email_key"),
    block_on("phone_e164"),
    block_on("name_block_key"),
    # A common name past the cap still meets within its postcode district.
    block_on("canonical_first_name", "last_name_key", "split_part(postcode, ' ', 1)"),
    block_on("last_name_key", "birth_on"),
    block_on("canonical_first_name", "birth_on"),
    block_on("birth_on", "postcode"),
    # A phone with one mistyped digit still shares one of its halves with the right number;
    # the leading half is shared by many numbers, so only with the same first initial.
    block_on("right(phone_e164, 7)"),
    block_on("left(phone_e164, length(phone_e164) - 4)", "left(canonical_first_name, 1)"),
]

# Expectation maximisation: each session fixes the comparisons of the columns it blocks
# on and trains the others' m-probabilities. A session runs only when its block has at
# least MIN_TRAINING_PAIRS pairs in the data at hand (an export without e-mails has no
# e-mail block); the plan and what it skipped are reported. Comparisons no session
# trains keep the default model's m-probabilities.
TRAINING_BLOCKS = [
    ("email_key",),
    ("phone_e164",),
    ("canonical_first_name", "last_name_key", "birth_on"),
    ("last_name_key", "postcode"),
]
MIN_TRAINING_PAIRS = 200

# Below this many records, random pairs say too little about how often fields agree by
# chance: the default model's u-probabilities are used, term frequencies still come
# from the data.
MIN_RECORDS_TO_TRAIN = 500
U_SAMPLE_PAIRS = 1_000_000

# Rules that are almost surely matches, for a first estimate of how often two random
# records match; the estimate is then refined on the scored pairs themselves (see
# matching.estimate_prior): the first guess need not be right, only in range.
DETERMINISTIC_RULES = [
    ("email_key",),
    ("canonical_first_name", "last_name_key", "birth_on"),
    ("full_name_key", "phone_e164"),
]
RECALL_OF_DETERMINISTIC_RULES = 0.7

# Two records are linked when the model gives them this probability of being one person.
# It is a statement of risk (1 false link in 100 at the margin), not a tuned constant:
# the prior it rests on is re-estimated on every data set.
MATCH_THRESHOLD = 0.99
# Pairs scored below this are not kept at all: at a million people they are tens of millions
# of pairs sharing a common name, and add next to nothing to the prior's re-estimate.
SCORE_FLOOR = 1e-3
# Splink's own DuckDB spills to disk beyond this, so identity fits beside the rest of a run
# (a run passes its duckdb_memory_limit setting; this is the default of match_records).
SPLINK_MEMORY_LIMIT = "4GB"

# The conflict guard enforces a part of its rule (assets/identity/conflict_guard.py) unless
# the data shows it would split more than this share of the phones and mailboxes whose records
# are evidently one person (macro guard_evidence), judged by the share's one-sided 95% lower
# bound so that a few twins in a small data set cannot switch it off. Measured: at most 0.8%
# on the generator's profiles (twins), 3.6-13% on FEBRL 1-3 (replaced first names, rewritten
# birth dates); see docs/identity.md. With fewer evident pairs than the minimum, the part is
# enforced (precision first).
GUARD_MAX_CONTRADICTED_SHARE = 0.02
GUARD_MIN_EVIDENT_PAIRS = 30

# Identifying columns: a record with none of them cannot be matched to anything.
IDENTIFYING_COLUMNS = [
    "first_name_key",
    "last_name_key",
    "email_key",
    "phone_e164",
    "birth_on",
    "postcode",
]
