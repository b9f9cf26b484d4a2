"""The conflict guard: records of two different people are never one customer.

Households share a phone, a mailbox and an address; twins share a surname, a birth date
and all of those. Evidence on shared identifiers can chain such people together, so some
record pairs are declared two people whatever the model scores (a *conflict*):

- a steward said so (identity_overrides, `different_people`); or
- both carry a birth date and the dates differ by more than one typo (one changed or
  two swapped digits, or day and month swapped); or
- both carry a first name and the names are neither the same given name nor a typo apart
  ('pte' is Peter, 'sarh' and 'Sally' are Sarah, 'Emma' and 'Sophie' are two), unless
  first and last name are swapped between the records ('Mason Caitlin').

A steward's `same_person` decision overrides the rules (not another steward).

Each of the two rules is enforced only where the data backs it (measure_rule): some data
sets' own duplicates carry replaced first names or rewritten birth dates, and there the
rule would keep one person apart far more often than it protects a twin.

Conflicting records are never linked directly, and a cluster that joins them through
others is dissolved and rebuilt from its strongest links, never joining two conflicting
records (_reattach). docs/identity.md shows the effect of each rule on every evaluation set.

Tables the functions read on the connection: `records` (identity.match_input), `scored`
(every pair at or above the threshold, with match_weight), `links` (the pairs to link;
rewritten), `must_link` and `cannot_link` (unique_id_l < unique_id_r, stewards' decisions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import duckdb
from splink import DuckDBAPI
from splink.clustering import cluster_pairwise_predictions_at_threshold

from assets.identity.model import GUARD_MAX_CONTRADICTED_SHARE, GUARD_MIN_EVIDENT_PAIRS, UNIQUE_ID
from assets.shared.warehouse import MACROS_FILE

# The rule itself is the SQL macro are_two_people (assets/shared/macros.sql): identity/match_input.sql
# uses it too, to tell a household's phone from one person's.
RULE_CONFLICT = """
    are_two_people(a.first_name_key, a.canonical_first_name, a.last_name_key, a.birth_on,
                   b.first_name_key, b.canonical_first_name, b.last_name_key, b.birth_on)
"""

STEWARD_SAYS = """
    exists (select 1 from {table} s
            where s.unique_id_l = least(a.unique_id, b.unique_id) and s.unique_id_r = greatest(a.unique_id, b.unique_id))
"""
CONFLICT = f"""
    ({STEWARD_SAYS.format(table="cannot_link")})
    or ({RULE_CONFLICT} and not {STEWARD_SAYS.format(table="must_link")})
"""


# The conflict rule's macros in assets/shared/macros.sql (the others need the warehouse's variables).
RULE_MACROS = ("birth_dates_conflict", "first_names_conflict", "are_two_people", "guard_evidence")


def sql_macros(names: tuple[str, ...] = RULE_MACROS) -> list[str]:
    """The statements of the named macros of assets/shared/macros.sql, in the file's order."""
    statements = MACROS_FILE.read_text(encoding="utf-8").split(";\n")
    return [
        statement
        for statement in statements
        if any(f"macro {name}(" in statement for name in names)
    ]


@dataclass(frozen=True)
class GuardRule:
    """The parts of the conflict rule in force, and the evidence they were chosen on."""

    birth_dates: bool = True
    first_names: bool = True
    # part -> {"evident_pairs": n, "contradicted_pairs": n, "enforced": bool}
    evidence: dict[str, dict] = field(default_factory=dict, compare=False)

    def as_metadata(self) -> dict:
        return {
            "birth_dates_enforced": self.birth_dates,
            "first_names_enforced": self.first_names,
            "evidence": self.evidence,
        }


def measure_rule(con: duckdb.DuckDBPyConnection, table: str = "records") -> GuardRule:
    """The rule the records in `table` back (macro guard_evidence in assets/shared/macros.sql).

    A part is dropped only when the data shows, beyond chance, that it would split more than
    GUARD_MAX_CONTRADICTED_SHARE of the identifiers (phones, mailboxes) whose records are
    evidently one person: the share's one-sided 95% lower bound is above it, on at least
    GUARD_MIN_EVIDENT_PAIRS pairs. Counting identifiers rather than record pairs, and the
    bound rather than the share, keep one or two twin pairs in a small data set from
    switching the rule off (they are what it is for).
    """
    ensure_steward_tables(con)
    evidence = {
        part: {
            "evident_pairs": 0,
            "contradicted_pairs": 0,
            "evident_identifiers": 0,
            "contradicted_identifiers": 0,
        }
        for part in ("birth_dates", "first_names")
    }
    for part, pairs, contradicted_pairs, identifiers, contradicted in con.execute(
        f"select part, evident_pairs, contradicted_pairs, evident_identifiers, contradicted_identifiers "
        f"from guard_evidence('{table}') order by part"
    ).fetchall():
        evidence[part] = {
            "evident_pairs": pairs,
            "contradicted_pairs": contradicted_pairs,
            "evident_identifiers": identifiers,
            "contradicted_identifiers": contradicted,
        }
    for measured in evidence.values():
        bound = share_lower_bound(
            measured["contradicted_identifiers"], measured["evident_identifiers"]
        )
        measured["share_lower_bound"] = round(bound, 4)
        measured["enforced"] = (
            measured["evident_pairs"] < GUARD_MIN_EVIDENT_PAIRS
            or bound <= GUARD_MAX_CONTRADICTED_SHARE
        )
    return GuardRule(
        birth_dates=evidence["birth_dates"]["enforced"],
        first_names=evidence["first_names"]["enforced"],
        evidence=evidence,
    )


def share_lower_bound(hits: int, trials: int, z: float = 1.645) -> float:
    """One-sided 95% lower bound of a share (Wilson score interval); 0 with no trials."""
    if trials == 0:
        return 0.0
    share = hits / trials
    centre = share + z * z / (2 * trials)
    spread = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    return max(0.0, (centre - spread) / (1 + z * z / trials))


def use_rule(con: duckdb.DuckDBPyConnection, rule: GuardRule) -> None:
    """Make macro are_two_people on `con` apply the parts of `rule`."""
    con.execute("set variable guard_birth_dates = ?", [rule.birth_dates])
    con.execute("set variable guard_first_names = ?", [rule.first_names])


def ensure_steward_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The stewards' tables (empty when there are no decisions) and the conflict rule's macro."""
    for statement in sql_macros():
        con.execute(statement)
    for table in ("must_link", "cannot_link"):
        con.execute(
            f"create table if not exists {table} (unique_id_l varchar, unique_id_r varchar)"
        )


def guard_against_conflicts(con: duckdb.DuckDBPyConnection, db_api: DuckDBAPI) -> str:
    """Connected components over `links` plus stewards' links, no cluster holding a conflict.

    Leaves in `links` the links that stand; returns the name of a table (unique_id, cluster_id).
    """
    ensure_steward_tables(con)
    con.execute(
        f"""
        create or replace table links as
        with model_links as (
            select links.{UNIQUE_ID}_l, links.{UNIQUE_ID}_r, links.match_weight
            from links
            join records a on a.{UNIQUE_ID} = links.{UNIQUE_ID}_l
            join records b on b.{UNIQUE_ID} = links.{UNIQUE_ID}_r
            where not ({CONFLICT})
        ),
        steward_links as (
            select must_link.*, cast('infinity' as double) as match_weight
            from must_link
            semi join records a on a.{UNIQUE_ID} = must_link.{UNIQUE_ID}_l
            semi join records b on b.{UNIQUE_ID} = must_link.{UNIQUE_ID}_r
        )
        select * from model_links anti join steward_links using ({UNIQUE_ID}_l, {UNIQUE_ID}_r)
        union all
        select * from steward_links
        """
    )
    clusters = _connected_components(con, db_api)
    if not _conflicted_clusters(con, clusters):
        return clusters
    _dissolve_conflicted_clusters(con, clusters)
    # Only the dissolved clusters' records can change from here on: every other cluster is
    # a whole component whose links stand, and the links that were dropped between it and
    # a dissolved cluster are conflicts, which _reattach never joins. So the rebuilding runs
    # on the dissolved records alone (a few in a thousand), not on every record once per
    # round, and its components keep the ids they would have in the whole graph (a
    # component is named after its smallest record id).
    con.execute(
        f"""
        create or replace table reattach_records as
        select records.* from records
        semi join {clusters} as c on c.{UNIQUE_ID} = records.{UNIQUE_ID}
            and c.cluster_id in (select cluster_id from conflicted_clusters)
        """
    )
    con.execute(
        f"create or replace view reattach_links as select links.* from links "
        f"semi join reattach_records r on r.{UNIQUE_ID} = links.{UNIQUE_ID}_l"
    )
    rebuilt = _reattach(con, db_api, _connected_components(con, db_api, *REATTACHED))
    con.execute(
        f"""
        create or replace table guarded_clusters as
        select {UNIQUE_ID}, cluster_id from {clusters}
        where cluster_id not in (select cluster_id from conflicted_clusters)
        union all
        select {UNIQUE_ID}, cluster_id from {rebuilt}
        """
    )
    return "guarded_clusters"


# The records and links _reattach works on: those of the dissolved clusters.
REATTACHED = ("reattach_records", "reattach_links")


def _reattach(
    con: duckdb.DuckDBPyConnection, db_api: DuckDBAPI, clusters: str, rounds: int = 50
) -> str:
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
                select scored.{UNIQUE_ID}_l, scored.{UNIQUE_ID}_r, scored.match_weight
                from scored anti join links using ({UNIQUE_ID}_l, {UNIQUE_ID}_r)
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
                    arg_max({{'l': {UNIQUE_ID}_l, 'r': {UNIQUE_ID}_r}}, (match_weight, {UNIQUE_ID}_l, {UNIQUE_ID}_r)) as link,
                    max(match_weight) as match_weight
                from between_clusters
                group by all
            ),
            members as (
                select c.cluster_id, records.* from {clusters} as c join {REATTACHED[0]} as records using ({UNIQUE_ID})
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
        con.execute(
            f"insert into links select scored.{UNIQUE_ID}_l, scored.{UNIQUE_ID}_r, scored.match_weight "
            f"from scored semi join reattach using ({UNIQUE_ID}_l, {UNIQUE_ID}_r)"
        )
        clusters = _connected_components(con, db_api, *REATTACHED)
    return clusters


def _dissolve_conflicted_clusters(con: duckdb.DuckDBPyConnection, clusters: str) -> None:
    """Drop every model link inside a conflicted cluster: _reattach rebuilds it without the
    conflict. Stewards' links stay."""
    con.execute(
        f"""
        create or replace table links as
        select links.*
        from links
        join {clusters} as c on c.{UNIQUE_ID} = links.{UNIQUE_ID}_l
        where c.cluster_id not in (select cluster_id from conflicted_clusters)
            or links.match_weight = 'infinity'
        """
    )


def _connected_components(
    con: duckdb.DuckDBPyConnection,
    db_api: DuckDBAPI,
    nodes: str = "records",
    edges: str = "links",
) -> str:
    clusters = cluster_pairwise_predictions_at_threshold(
        nodes, edges, db_api=db_api, node_id_column_name=UNIQUE_ID
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
