"""Probabilistic record linkage with Splink: which customer records are one person.

The model is declared as data below (comparisons, blocking rules, training plan,
thresholds), the way Splink's own examples declare it; the functions only run it.
Splink runs in its own in-memory DuckDB so its working tables never land in the
warehouse: the input is handed over as Arrow and the results come back the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on
from splink.clustering import cluster_pairwise_predictions_at_threshold

# Columns of identity.match_input that the model compares.
UNIQUE_ID = "unique_id"

def _same(column: str) -> str:
    return f'"{column}_l" = "{column}_r"'


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
            cll.And(cll.JaroWinklerLevel("first_name_key", 0.92), cll.JaroWinklerLevel("last_name_key", 0.92)),
            cll.And(cll.JaroWinklerLevel("first_name_key", 0.80), cll.JaroWinklerLevel("last_name_key", 0.88)),
            cll.ExactMatchLevel("last_name_key").configure(tf_adjustment_column="last_name_key"),
            cll.ExactMatchLevel("canonical_first_name").configure(tf_adjustment_column="canonical_first_name"),
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
# Tuned on generator data (seed 21, 20k people) with the whole-name comparison: 0.9 gave
# F1 0.965, 0.95 gave 0.970, 0.98 and 0.99 gave 0.971 (precision 0.986, 0.996, 0.999, 0.999);
# a lower threshold adds links the conflict guard then has to cut, so recall barely moves.
MATCH_THRESHOLD = 0.99

# Two records conflict when both carry a birth date and the dates differ by more than a
# one-character typo, or both carry a first name and the names are neither the same
# given name nor a typo apart, in spelling or in given name (more than two edits and
# little alike: 'pte' is Peter, 'sarh' and 'Sally' are Sarah, 'Emma' and 'Sophie' are two).
# Conflicting records are two people, whatever they share (a household's phone and
# address, a family mailbox), so they are never linked directly,
# and a cluster that joins them through others is dissolved and rebuilt from its
# strongest links, never joining two conflicting records (_reattach).
CONFLICT = """
    (a.birth_on is not null and b.birth_on is not null
        and levenshtein(strftime(a.birth_on, '%Y%m%d'), strftime(b.birth_on, '%Y%m%d')) > 1)
    or (a.canonical_first_name is not null and b.canonical_first_name is not null
        and a.canonical_first_name <> b.canonical_first_name
        and levenshtein(a.first_name_key, b.first_name_key) > 2
        and levenshtein(a.canonical_first_name, b.canonical_first_name) > 2
        and jaro_winkler_similarity(a.first_name_key, b.first_name_key) < 0.8)
"""
# identity.match_evidence: each scored pair with the weight (log2 Bayes factor) every
# field contributed, term-frequency adjustments included, and the blocking rule that proposed it.
# Rounded to 6 decimals: DuckDB's parallel sums during training vary in the last bits
# from run to run, and a rerun on unchanged data must publish the same table.
EVIDENCE_SELECT = """
select
    unique_id_l,
    unique_id_r,
    round(match_probability, 6) as match_probability,
    round(match_weight, 6) as match_weight,
    round(mw_name + coalesce(mw_tf_adj_name, 0), 6) as name_weight,
    round(mw_birth_on, 6) as birth_date_weight,
    round(mw_email, 6) as email_weight,
    round(mw_phone, 6) as phone_weight,
    round(mw_address, 6) as address_weight,
    cast(match_key as integer) as blocking_rule
from {predictions}
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
class MatchResult:
    clusters: pa.Table  # unique_id, cluster_id
    evidence: pa.Table  # pairs at or above the threshold, with their match weights
    model_json: dict
    pairs_linked: int
    charts: dict[str, Path]  # chart name -> HTML file, when a charts folder was given


def train(linker: Linker, seed: int = 42) -> None:
    """Estimate the model's parameters from the data itself (no labels)."""
    linker.training.estimate_probability_two_random_records_match(
        DETERMINISTIC_RULES, recall=RECALL_OF_DETERMINISTIC_RULES
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=U_SAMPLE_PAIRS, seed=seed)
    for block in EM_TRAINING_BLOCKS:
        linker.training.estimate_parameters_using_expectation_maximisation(block)


def match_records(
    records: pa.Table,
    threshold: float = MATCH_THRESHOLD,
    seed: int = 42,
    model: Path | None = None,
    charts_dir: Path | None = None,
) -> MatchResult:
    """Cluster `records` (identity.match_input) into people.

    The model is trained on the records themselves, or read from `model` (a JSON file
    saved by an earlier run) to skip training. With `charts_dir`, Splink's charts are
    written there as HTML.
    """
    # Splink warns about every level EM could not train; a pipeline log wants errors only.
    logging.getLogger("splink").setLevel(logging.ERROR)
    con = duckdb.connect()
    db_api = DuckDBAPI(connection=con)
    source = db_api.register(records, table_name="match_input")
    if model is None:
        linker = Linker(source, splink_settings(), log_level=logging.ERROR)
        train(linker, seed=seed)
    else:
        linker = Linker(source, str(model), log_level=logging.ERROR)
    predictions = linker.inference.predict(threshold_match_probability=threshold)
    con.execute(f"create table scored as {EVIDENCE_SELECT.format(predictions=predictions.physical_name)}")
    con.execute("create table links as select * from scored")
    con.register("match_input_records", records)
    con.execute("create table records as select * from match_input_records")
    guarded = guard_against_conflicts(con, db_api)
    charts = write_charts(linker, predictions, db_api, guarded, charts_dir) if charts_dir else {}
    return MatchResult(
        clusters=con.sql(f"select unique_id, cluster_id from {guarded}").to_arrow_table(),
        evidence=con.sql(
            "select scored.*, links.unique_id_l is not null as is_linked from scored "
            "left join links using (unique_id_l, unique_id_r) order by unique_id_l, unique_id_r"
        ).to_arrow_table(),
        model_json=linker.misc.save_model_to_json(),
        pairs_linked=con.execute("select count(*) from links").fetchall()[0][0],
        charts=charts,
    )


def write_charts(linker: Linker, predictions, db_api: DuckDBAPI, clusters: str, folder: Path) -> dict[str, Path]:
    """Splink's model charts, a waterfall of sample pairs and the cluster studio, as HTML.

    The waterfall hides record values; the cluster studio shows records, so the folder
    holds personal data like the warehouse does.
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
        chart.save(str(paths[name]))
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


def guard_against_conflicts(con: duckdb.DuckDBPyConnection, db_api: DuckDBAPI) -> str:
    """Connected components over the links of table `links`, no cluster holding a conflict.

    Drops conflicting links from `links`; returns the name of a table (unique_id, cluster_id).
    """
    con.execute(
        f"""
        create or replace table links as
        select links.*
        from links
        join records a on a.{UNIQUE_ID} = links.{UNIQUE_ID}_l
        join records b on b.{UNIQUE_ID} = links.{UNIQUE_ID}_r
        where not coalesce({CONFLICT}, false)
        """
    )
    clusters = _connected_components(con, db_api)
    if _conflicted_clusters(con, clusters):
        _dissolve_conflicted_clusters(con, clusters)
        clusters = _connected_components(con, db_api)
    return _reattach(con, db_api, clusters)


def _reattach(con: duckdb.DuckDBPyConnection, db_api: DuckDBAPI, clusters: str, rounds: int = 50) -> str:
    """Rebuild dissolved clusters from their strongest links, never joining a conflict.

    Greedy agglomeration with cannot-link constraints: each round, every cluster picks its
    strongest dropped link to a cluster it does not conflict with, and pairs of clusters
    that pick each other are joined. Joining only mutual picks means no round can chain
    three clusters whose ends conflict. A person has a handful of records, so a few rounds
    rebuild them; after `rounds`, what is still apart stays apart (the safe side).
    """
    for _ in range(rounds):
        con.execute(
            f"""
            create or replace table reattach as
            with
            dropped as (
                select scored.* from scored anti join links using ({UNIQUE_ID}_l, {UNIQUE_ID}_r)
            ),
            between_clusters as (
                select dropped.*, l.cluster_id as cluster_l, r.cluster_id as cluster_r
                from dropped
                join {clusters} as l on l.{UNIQUE_ID} = dropped.{UNIQUE_ID}_l
                join {clusters} as r on r.{UNIQUE_ID} = dropped.{UNIQUE_ID}_r
                where l.cluster_id <> r.cluster_id
            ),
            cluster_pairs as (
                select
                    least(cluster_l, cluster_r) as cluster_a,
                    greatest(cluster_l, cluster_r) as cluster_b,
                    arg_max({{'l': {UNIQUE_ID}_l, 'r': {UNIQUE_ID}_r}}, match_weight) as link,
                    max(match_weight) as match_weight
                from between_clusters
                group by all
            ),
            members as (
                select c.cluster_id, records.* from {clusters} as c join records using ({UNIQUE_ID})
            ),
            conflicting_pairs as (
                select distinct cluster_pairs.cluster_a, cluster_pairs.cluster_b
                from cluster_pairs
                join members a on a.cluster_id = cluster_pairs.cluster_a
                join members b on b.cluster_id = cluster_pairs.cluster_b
                where {CONFLICT}
            ),
            allowed as (
                select * from cluster_pairs anti join conflicting_pairs using (cluster_a, cluster_b)
            ),
            picks as (
                select cluster_a as cluster_id, cluster_b as partner, match_weight from allowed
                union all
                select cluster_b, cluster_a, match_weight from allowed
            ),
            best as (
                select cluster_id, partner from picks
                qualify row_number() over (partition by cluster_id order by match_weight desc, partner) = 1
            )
            select allowed.link.l as {UNIQUE_ID}_l, allowed.link.r as {UNIQUE_ID}_r
            from allowed
            join best as a on a.cluster_id = allowed.cluster_a and a.partner = allowed.cluster_b
            join best as b on b.cluster_id = allowed.cluster_b and b.partner = allowed.cluster_a
            """
        )
        if not con.execute("select count(*) from reattach").fetchall()[0][0]:
            break
        con.execute(f"insert into links select scored.* from scored semi join reattach using ({UNIQUE_ID}_l, {UNIQUE_ID}_r)")
        clusters = _connected_components(con, db_api)
    return clusters


def _dissolve_conflicted_clusters(con: duckdb.DuckDBPyConnection, clusters: str) -> None:
    """Drop every link inside a conflicted cluster: _reattach rebuilds it without the conflict."""
    con.execute(
        f"""
        create or replace table links as
        select links.*
        from links
        join {clusters} as c on c.{UNIQUE_ID} = links.{UNIQUE_ID}_l
        where c.cluster_id not in (select cluster_id from conflicted_clusters)
        """
    )


def _connected_components(con: duckdb.DuckDBPyConnection, db_api: DuckDBAPI) -> str:
    clusters = cluster_pairwise_predictions_at_threshold(
        "records", "links", db_api=db_api, node_id_column_name=UNIQUE_ID
    )
    return clusters.physical_name


def _conflicted_clusters(con: duckdb.DuckDBPyConnection, clusters: str) -> int:
    """Clusters holding two conflicting records, into table conflicted_clusters; their count."""
    con.execute(
        f"""
        create or replace table conflicted_clusters as
        with sized as (
            select *, count(*) over (partition by cluster_id) as size from {clusters}
        ),
        members as (
            select sized.cluster_id, records.* from sized join records using ({UNIQUE_ID}) where size > 1
        )
        select distinct a.cluster_id
        from members a
        join members b on a.cluster_id = b.cluster_id and a.{UNIQUE_ID} < b.{UNIQUE_ID}
        where {CONFLICT}
        """
    )
    return con.execute("select count(*) from conflicted_clusters").fetchall()[0][0]
