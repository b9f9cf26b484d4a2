"""Incremental identity: a run that brings few new or changed records scores only them.

Why it gives what a full run gives. A pair's score depends on its two records and on the
saved model (model, term frequencies, guard rule: assets/identity/frozen_model.py), so the
pairs among unchanged records keep the weights the previous run gave them, and only pairs
with a new or changed record are scored: new against existing (Splink's predict_between)
and new against new (predict_within). Clustering (stewards' decisions, the conflict guard,
connected components: assets/identity/conflict_guard.py) only ever looks along scored pairs
and stewards' same-person pairs, so the records connected by such pairs (a *component*) are
clustered from their own records, pairs and decisions alone. A component that holds no new
or changed record, lost no record and whose stewards' decisions did not change is the
component the previous run clustered, and keeps its clusters; every other component is
clustered again. A full run that scores every pair with the same saved model (setting
identity_refresh = rescore) therefore publishes the same clusters and evidence, which
tests/test_incremental_identity.py checks.

Which path a run takes (plan): incremental only when the warehouse holds the previous
run's clusters, evidence, matched records and saved model; the model's definition in code is
the one it was saved with; nobody was erased since it was saved (an erased person's name
must not stay in the saved term frequencies); identity_refresh is auto; and at most
incremental_max_share of the records are new, changed or removed. Otherwise a full run
trains afresh (identity_refresh = full, `omniloyal run --full-refresh`, the weekly schedule).

identity.matched_records remembers, for every record the run matched, a hash of its matching
keys (a record whose keys change, e.g. a new phone or a phone newly flagged shared, counts
as changed), its component and how many records that component had (erasure deletes the
rows of erased records: a component with fewer rows than it had lost records).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from splink import DuckDBAPI, Linker
from splink.clustering import cluster_pairwise_predictions_at_threshold

from assets.identity.conflict_guard import guard_against_conflicts, use_rule
from assets.identity.frozen_model import (
    MODEL_TABLE,
    TERM_FREQUENCIES_TABLE,
    FrozenModel,
    SavedModel,
    definition_fingerprint,
    save_frozen,
)
from assets.identity.matching import (
    EVIDENCE_SQL,
    SCORED_SELECT,
    MatchResult,
    TrainingReport,
    _load_decisions,
    register_saved_term_frequencies,
    rounded,
    scored_sql,
    splink_connection,
    splink_settings,
)
from assets.identity.model import (
    MATCH_THRESHOLD,
    NAME_BLOCK_KEY,
    SCORE_FLOOR,
    SPLINK_MEMORY_LIMIT,
    UNIQUE_ID,
)
from assets.shared.warehouse import table_exists

MATCHED_RECORDS = "identity.matched_records"
MATCH_RUNS = "identity.match_runs"
# The previous run's tables an incremental run builds on.
PREVIOUS_TABLES = ("identity.clusters", "identity.match_evidence", MATCHED_RECORDS)

# identity_refresh: auto (incremental when it applies), full (train), rescore (score every
# pair again with the saved model: what an incremental run equals).
REFRESH_MODES = ("auto", "full", "rescore")

# Table candidates as SCORED_SELECT makes it, for a run with nothing to score.
CANDIDATE_COLUMNS = """
    unique_id_l varchar, unique_id_r varchar, match_weight double, name_weight double,
    birth_date_weight double, email_weight double, phone_weight double, address_weight double,
    blocking_rule integer, gamma_name integer, gamma_birth_on integer, gamma_email integer,
    gamma_phone integer, gamma_address integer
"""

# A record's matching keys, as one hash: every column of identity.match_input.
# A record's matching keys: its match_input row and its name block key, which depends on how
# many records share the name (a name passing the cap changes the pairs of its records).
KEYS_SQL = (
    "select unique_id, md5(cast(m as varchar)) as keys_hash "
    f"from (select *, {NAME_BLOCK_KEY} as name_block_key from identity.match_input) m"
)


def current_definition() -> str:
    """The fingerprint of the model as declared in code (assets/identity/model.py)."""
    return definition_fingerprint(splink_settings().create_settings_dict("duckdb"), MATCH_THRESHOLD)


@dataclass
class IdentityPlan:
    path: str  # full | rescore | incremental
    reason: str
    records: int = 0
    changed: int = 0  # new records and records whose matching keys changed
    removed: int = 0  # records of the previous run no longer delivered (erased, purged)
    keys: pa.Table | None = None  # unique_id, keys_hash of every record
    changed_ids: pa.Table | None = None  # unique_id
    seeds: pa.Table | None = None  # unique_id: unchanged records whose component changed
    saved: SavedModel | None = None

    def as_metadata(self) -> dict:
        return {
            "path": self.path,
            "reason": self.reason,
            "records": self.records,
            "records_new_or_changed": self.changed,
            "records_removed": self.removed,
        }


def erased_records(con: duckdb.DuckDBPyConnection) -> int:
    """Records erased so far (privacy.erased_records keeps one row per erased record)."""
    if not table_exists(con, "privacy.erased_records"):
        return 0
    return con.execute("select count(*) from privacy.erased_records").fetchall()[0][0]


def plan(
    con: duckdb.DuckDBPyConnection,
    refresh: str,
    max_share: float,
    saved: SavedModel | None,
    model_file_given: bool,
) -> IdentityPlan:
    """Which path identity takes on the build `con` (before its identity tables are replaced)."""
    keys = con.sql(KEYS_SQL).to_arrow_table()
    records = keys.num_rows

    def full(reason: str) -> IdentityPlan:
        return IdentityPlan("full", reason, records=records, changed=records, keys=keys)

    if refresh == "full":
        return full("full refresh asked for")
    if model_file_given:
        return full("identity_model names a model file: every pair is scored with it")
    if saved is None or not all(table_exists(con, t) for t in PREVIOUS_TABLES):
        return full("no saved model from an earlier run")
    if saved.fingerprint != current_definition():
        return full("the model's definition changed since it was saved")
    if erased_records(con) != saved.erased_records_seen:
        return full("records were erased since the model was saved: fresh term frequencies")
    if refresh == "rescore":
        return IdentityPlan(
            "rescore", "rescore asked for", records, records, keys=keys, saved=saved
        )
    con.register("current_keys", keys)
    try:
        changed_ids, removed, seeds = _delta(con)
    finally:
        con.unregister("current_keys")
    share = (changed_ids.num_rows + removed) / max(records, 1)
    if share > max_share:
        return full(
            f"{share:.1%} of the records are new, changed or removed, more than {max_share:.0%}"
        )
    return IdentityPlan(
        "incremental",
        f"{share:.2%} of the records are new, changed or removed",
        records,
        changed_ids.num_rows,
        removed,
        keys,
        changed_ids,
        seeds,
        saved,
    )


def _delta(con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, int, pa.Table]:
    """Changed records (new, or keys changed), how many were removed, and the unchanged
    records to cluster again: those of a component that lost or changed a record, and those
    the previous run left without a cluster row (erasure deletes a whole cluster's rows)."""
    changed = con.sql(
        f"""
        select unique_id from current_keys
        anti join {MATCHED_RECORDS} using (unique_id, keys_hash)
        order by unique_id
        """
    ).to_arrow_table()
    removed, seeds = (
        con.execute(
            f"""
            select count(*) from {MATCHED_RECORDS} anti join current_keys using (unique_id)
            """
        ).fetchall()[0][0],
        con.sql(
            f"""
            with
            previous as (select * from {MATCHED_RECORDS}),
            gone as (select * from previous anti join current_keys using (unique_id, keys_hash)),
            shrunk as (
                select component from previous
                group by component, component_records having count(*) < component_records
            ),
            touched as (select component from gone union select component from shrunk),
            unchanged as (select * from previous semi join current_keys using (unique_id, keys_hash))
            select unique_id from unchanged semi join touched using (component)
            union
            select unique_id from current_keys anti join identity.clusters using (unique_id)
            order by unique_id
            """
        ).to_arrow_table(),
    )
    return changed, removed, seeds


def components(records: pa.Array | pa.ChunkedArray, evidence: pa.Table) -> pa.Table:
    """unique_id, component, component_records: the records connected by scored pairs and
    stewards' same-person pairs (what clustering looks along), numbered."""
    with duckdb.connect() as con:
        con.register("record_ids", pa.table({UNIQUE_ID: records}))
        con.register("evidence", evidence)
        con.execute("create table nodes as select unique_id from record_ids")
        con.execute(
            """
            create table edges as
            select unique_id_l, unique_id_r from evidence
            where match_weight is not null or link_source = 'steward'
            """
        )
        found = cluster_pairwise_predictions_at_threshold(
            "nodes", "edges", db_api=DuckDBAPI(connection=con), node_id_column_name=UNIQUE_ID
        ).physical_name
        return con.sql(
            f"""
            select
                unique_id,
                dense_rank() over (order by cluster_id) as component,
                count(*) over (partition by cluster_id) as component_records
            from {found}
            order by unique_id
            """
        ).to_arrow_table()


def save_matched_records(
    con: duckdb.DuckDBPyConnection, keys: pa.Table, evidence: pa.Table
) -> None:
    """identity.matched_records: what this run matched, for the next run to compare with."""
    con.register("matched_keys", keys)
    con.register("matched_components", components(keys.column(UNIQUE_ID), evidence))
    con.execute(
        f"""
        create or replace table {MATCHED_RECORDS} as
        select matched_keys.unique_id, matched_keys.keys_hash,
               matched_components.component, matched_components.component_records
        from matched_keys join matched_components using (unique_id)
        order by unique_id
        """
    )
    con.unregister("matched_keys")
    con.unregister("matched_components")


@dataclass
class DeltaReport:
    """What an incremental run did, for the log and the asset metadata."""

    records_scored: int = 0  # new and changed records, scored against all
    pairs_scored: int = 0  # candidate pairs at or above the threshold among them
    records_reclustered: int = 0
    extra: dict = field(default_factory=dict)


def match_delta(
    records: pa.Table,
    changed: pa.Table,
    seeds: pa.Table,
    previous_evidence: pa.Table,
    previous_clusters: pa.Table,
    frozen: FrozenModel,
    must_link: pa.Table | None = None,
    cannot_link: pa.Table | None = None,
    threshold: float = MATCH_THRESHOLD,
    memory_limit: str = SPLINK_MEMORY_LIMIT,
    spill_dir: Path | None = None,
) -> tuple[MatchResult, DeltaReport]:
    """Clusters and evidence of `records` (identity.match_input), scoring only `changed`.

    `previous_evidence` and `previous_clusters` are the previous run's identity.match_evidence
    and identity.clusters; `seeds` the unchanged records to cluster again whatever the new
    pairs (plan); `frozen` the saved model those were made with.
    """
    logging.getLogger("splink").setLevel(logging.ERROR)
    with splink_connection(memory_limit, spill_dir) as (con, _):
        con.register("all_records_arrow", records)
        # As the full path has them (matching._match): the name block key over all records.
        con.execute(
            f"create table all_records as select *, {NAME_BLOCK_KEY} as name_block_key from all_records_arrow"
        )
        con.unregister("all_records_arrow")
        for name, table in (
            ("changed", changed),
            ("seeds", seeds),
            ("previous_evidence", previous_evidence),
            ("previous_clusters", previous_clusters),
        ):
            con.register(f"{name}_arrow", table)
            con.execute(f"create table {name} as select * from {name}_arrow")
            con.unregister(f"{name}_arrow")
        _load_decisions(con, must_link, cannot_link)
        use_rule(con, frozen.guard)
        report = DeltaReport()
        _score_changed(con, frozen, threshold, report)
        clusters = _recluster(con, report)
        result = MatchResult(
            clusters=con.sql(
                f"select unique_id, cluster_id from {clusters} order by unique_id"
            ).to_arrow_table(),
            evidence=con.sql(EVIDENCE_SQL).to_arrow_table(),
            model_json=rounded(json.loads(json.dumps(frozen.model_json))),
            pairs_linked=con.execute("select count(*) from links").fetchall()[0][0],
            training=TrainingReport(records=records.num_rows, parameters="saved model"),
            guard=frozen.guard,
            frozen=frozen,
        )
        return result, report


def _score_changed(
    con: duckdb.DuckDBPyConnection, frozen: FrozenModel, threshold: float, report: DeltaReport
) -> None:
    """Table `scored`: the previous run's scored pairs among unchanged records, and every
    pair with a changed record at or above the threshold, scored with the saved model."""
    con.execute(
        "create table new_records as select * from all_records semi join changed using (unique_id)"
    )
    con.execute(
        "create table existing_records as select * from all_records anti join changed using (unique_id)"
    )
    counts = con.execute(
        "select (select count(*) from new_records), (select count(*) from existing_records)"
    ).fetchall()[0]
    report.records_scored = counts[0]
    selects = []
    if counts[0]:
        db_api = DuckDBAPI(connection=con)
        # Splink reads the tables as handed over: Arrow, as the full path hands them.
        new = db_api.register(
            con.sql("select * from new_records").to_arrow_table(), table_name="splink_new"
        )
        linker = Linker(new, json.loads(json.dumps(frozen.model_json)), log_level=logging.ERROR)
        register_saved_term_frequencies(linker, db_api, frozen.term_frequencies)
        inference = linker.inference
        predictions = [
            inference.predict_within(
                new, threshold_match_probability=SCORE_FLOOR, warning_mode="never"
            )
        ]
        if counts[1]:
            existing = db_api.register(
                con.sql("select * from existing_records").to_arrow_table(),
                table_name="splink_existing",
            )
            predictions.append(
                inference.predict_between(
                    new, existing, threshold_match_probability=SCORE_FLOOR, warning_mode="never"
                )
            )
        selects = [SCORED_SELECT.format(predictions=p.physical_name) for p in predictions]
    if selects:
        # predict_between puts the new record left; the full run puts the lower id left.
        con.execute(
            "create table candidates as select least(unique_id_l, unique_id_r) as unique_id_l, "
            "greatest(unique_id_l, unique_id_r) as unique_id_r, * exclude (unique_id_l, unique_id_r) from ("
            + " union all ".join(f"({s})" for s in selects)
            + ")"
        )
    else:
        con.execute(f"create table candidates ({CANDIDATE_COLUMNS})")
    con.execute(scored_sql({}, 0.0, threshold))
    report.pairs_scored = con.execute("select count(*) from scored").fetchall()[0][0]
    con.execute(
        """
        insert into scored by name
        select unique_id_l, unique_id_r, match_probability, match_weight, name_weight,
               birth_date_weight, email_weight, phone_weight, address_weight, blocking_rule
        from previous_evidence
        where match_weight is not null
            and unique_id_l in (select unique_id from existing_records)
            and unique_id_r in (select unique_id from existing_records)
        """
    )


def _recluster(con: duckdb.DuckDBPyConnection, report: DeltaReport) -> str:
    """Cluster again the components holding a changed record, a seed or a record whose
    stewards' decisions changed; every other record keeps its previous cluster. Leaves in
    `links` every link that stands; returns the table of (unique_id, cluster_id)."""
    db_api = DuckDBAPI(connection=con)
    con.execute(
        """
        create table edges as
        select unique_id_l, unique_id_r from scored
        union
        select unique_id_l, unique_id_r from must_link
        semi join all_records a on a.unique_id = must_link.unique_id_l
        semi join all_records b on b.unique_id = must_link.unique_id_r
        """
    )
    con.execute("create table nodes as select unique_id from all_records")
    found = cluster_pairwise_predictions_at_threshold(
        "nodes", "edges", db_api=db_api, node_id_column_name=UNIQUE_ID
    ).physical_name
    # Stewards' decisions as the previous run applied them, read back from its evidence.
    con.execute(
        f"""
        create table region as
        with
        previous_must as (select unique_id_l, unique_id_r from previous_evidence where link_source = 'steward'),
        previous_cannot as (select unique_id_l, unique_id_r from previous_evidence where cut_by = 'steward'),
        decisions_changed as (
            (select * from must_link except select * from previous_must)
            union (select * from previous_must except select * from must_link)
            union (select * from cannot_link except select * from previous_cannot)
            union (select * from previous_cannot except select * from cannot_link)
        ),
        starts as (
            select unique_id from changed
            union select unique_id from seeds
            union select unique_id_l from decisions_changed
            union select unique_id_r from decisions_changed
        ),
        touched as (select distinct cluster_id from {found} semi join starts using (unique_id))
        select unique_id from {found} semi join touched using (cluster_id)
        """
    )
    report.records_reclustered = con.execute("select count(*) from region").fetchall()[0][0]
    # The guard reads `records` and `links`: the region's own.
    con.execute(
        "create table records as select * from all_records semi join region using (unique_id)"
    )
    con.execute(
        "create table links as select unique_id_l, unique_id_r, match_weight from scored "
        "where unique_id_l in (select unique_id from region)"
    )
    reclustered = guard_against_conflicts(con, db_api)
    con.execute(
        """
        insert into links
        select unique_id_l, unique_id_r, match_weight from previous_evidence
        where is_linked
            and unique_id_l in (select unique_id from all_records)
            and unique_id_r in (select unique_id from all_records)
            and unique_id_l not in (select unique_id from region)
        """
    )
    con.execute(
        f"""
        create table delta_clusters as
        select unique_id, cluster_id from {reclustered}
        union all
        select unique_id, cluster_id from previous_clusters
        semi join all_records using (unique_id)
        anti join region using (unique_id)
        """
    )
    return "delta_clusters"


def save_state(
    con: duckdb.DuckDBPyConnection,
    result: MatchResult,
    path: IdentityPlan,
    delta: DeltaReport | None,
    as_of,
    saved: SavedModel | None,
) -> dict:
    """What the next run compares with and scores with: identity.matched_records, the saved
    model (replaced unless this run scored with it incrementally) and a row of
    identity.match_runs saying which path this run took; that row, as a dict."""
    save_matched_records(con, path.keys, result.evidence)
    if result.frozen is None:  # nothing was scored: the next run trains
        con.execute(f"drop table if exists {MODEL_TABLE}")
        con.execute(f"drop table if exists {TERM_FREQUENCIES_TABLE}")
    elif path.path != "incremental":
        saved_on = saved.saved_on if path.path == "rescore" and saved is not None else as_of
        save_frozen(con, result.frozen, current_definition(), saved_on, erased_records(con))
    run = {
        "as_of": as_of,
        "path": path.path,
        "reason": path.reason,
        "records": path.records,
        "records_new_or_changed": path.changed,
        "records_removed": path.removed,
        "records_scored": delta.records_scored if delta else path.records,
        "records_reclustered": delta.records_reclustered if delta else path.records,
    }
    con.execute(
        f"""
        create table if not exists {MATCH_RUNS} (
            as_of date, path varchar, reason varchar, records bigint,
            records_new_or_changed bigint, records_removed bigint,
            records_scored bigint, records_reclustered bigint
        )"""
    )
    con.execute(
        f"insert into {MATCH_RUNS} by name select * from (values ({', '.join('?' * len(run))})) "
        f"as t({', '.join(run)})",
        list(run.values()),
    )
    return {key: str(value) if key == "as_of" else value for key, value in run.items()}
