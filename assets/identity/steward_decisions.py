"""Stewards' decisions: pairs of records a person has declared one person, or two.

A CSV file (setting `identity_overrides`) with the columns decision (`same_person` or
`different_people`), source_a, record_id_a, source_b, record_id_b and reason. Matching
honours every applicable decision over any model score: `same_person` records always share
a customer_id, `different_people` records never do.

A file that cannot be read, or lacks a column, fails the run (StewardDecisionsError, one
line naming the file). A bad row does not: it is loaded into identity.steward_decisions
with a status saying why it was not applied, and the counts are reported.

    applied           the decision is honoured
    unknown record    a record it names is not in identity.match_input
    invalid: <what>   an empty field, an unknown decision, a record paired with itself,
                      or a contradiction (records declared different people that
                      same_person decisions join): none of the contradicting rows apply

Messages and statuses name lines and columns, never values: the file holds record keys
and a steward's free-text reason, which may describe the person.
"""

from __future__ import annotations

import csv
from collections import defaultdict, deque
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pyarrow as pa

COLUMNS = ("decision", "source_a", "record_id_a", "source_b", "record_id_b", "reason")
DECISIONS = ("same_person", "different_people")
APPLIED = "applied"
UNKNOWN_RECORD = "unknown record"
TABLE = "identity.steward_decisions"

SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("decision", pa.string()),
        ("unique_id_a", pa.string()),
        ("unique_id_b", pa.string()),
        ("reason", pa.string()),
        ("status", pa.string()),
    ]
)


class StewardDecisionsError(ValueError):
    """The decisions file cannot be used at all; the message names the file."""


@dataclass(frozen=True)
class Decision:
    line: int  # line of the file where the row starts (the header is line 1)
    decision: str | None  # None when the file's value is neither decision
    unique_id_a: str | None  # source:record_id, None when either part is empty
    unique_id_b: str | None
    reason: str | None
    status: str  # APPLIED until found otherwise


def read_decisions(path: str | Path) -> list[Decision]:
    """Every row of the file, checked on its own (empty fields, decision value, self-pairs).

    Rows that pass have status 'applied'; resolve() then checks them against the records.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StewardDecisionsError(f"{path}: steward decisions file not found") from None
    except OSError as err:
        raise StewardDecisionsError(
            f"{path}: cannot read the steward decisions file ({err.strerror})"
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StewardDecisionsError(f"{path}: not a UTF-8 text file") from None
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader)
    except StopIteration:
        raise StewardDecisionsError(
            f"{path}: empty file; expected a header with {', '.join(COLUMNS)}"
        ) from None
    except csv.Error:
        raise StewardDecisionsError(f"{path}: line 1: not a CSV header") from None
    position = {name.strip().lower(): i for i, name in reversed(list(enumerate(header)))}
    missing = [c for c in COLUMNS if c not in position]
    if missing:
        # The header itself is not echoed: a file without one would show a row of data.
        raise StewardDecisionsError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}"
        )
    decisions = []
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            raise StewardDecisionsError(
                f"{path}: line {line}: not valid CSV (an unclosed quote?)"
            ) from None
        if not any(field.strip() for field in row):
            continue  # a blank line
        fields = {c: (row[position[c]].strip() if position[c] < len(row) else "") for c in COLUMNS}
        decisions.append(_checked(line, fields))
    return decisions


def _checked(line: int, fields: dict[str, str]) -> Decision:
    problems = []
    empty = [c for c in COLUMNS if not fields[c]]
    if empty:
        problems.append(f"empty {', '.join(empty)}")
    decision = fields["decision"].lower()
    if decision and decision not in DECISIONS:
        problems.append("decision must be same_person or different_people")

    def unique_id(side: str) -> str | None:
        source, record_id = fields[f"source_{side}"].lower(), fields[f"record_id_{side}"]
        return f"{source}:{record_id}" if source and record_id else None

    a, b = unique_id("a"), unique_id("b")
    if a is not None and a == b:
        problems.append("a record paired with itself")
    status = f"invalid: {'; '.join(problems)}" if problems else APPLIED
    # Another value is not kept: a shifted row could put a name in this column.
    return Decision(
        line, decision if decision in DECISIONS else None, a, b, fields["reason"] or None, status
    )


def resolve(decisions: list[Decision], known_ids: set[str]) -> list[Decision]:
    """Mark decisions naming records not in `known_ids`, then contradictions among the rest."""
    checked = [
        replace(d, status=UNKNOWN_RECORD)
        if d.status == APPLIED and not {d.unique_id_a, d.unique_id_b} <= known_ids
        else d
        for d in decisions
    ]
    return _contradictions(checked)


def _contradictions(decisions: list[Decision]) -> list[Decision]:
    """A different_people pair joined by a chain of same_person decisions: none of them apply."""
    edges: dict[str, list[tuple[str, int]]] = defaultdict(list)
    group: dict[str, str] = {}  # union-find over the same_person decisions as given

    def root(node: str) -> str:
        while group.get(node, node) != node:
            node = group[node]
        return node

    for i, d in enumerate(decisions):
        if d.status == APPLIED and d.decision == "same_person":
            edges[d.unique_id_a].append((d.unique_id_b, i))
            edges[d.unique_id_b].append((d.unique_id_a, i))
            group[root(d.unique_id_a)] = root(d.unique_id_b)
    dropped: set[int] = set()
    contradicted: dict[int, set[int]] = defaultdict(set)  # decision -> lines it contradicts
    for i, d in enumerate(decisions):
        if (
            d.status != APPLIED
            or d.decision != "different_people"
            or root(d.unique_id_a) != root(d.unique_id_b)
        ):
            continue
        while (path := _same_person_path(edges, dropped, d.unique_id_a, d.unique_id_b)) is not None:
            for j in path:
                contradicted[j].add(d.line)
                contradicted[i].add(decisions[j].line)
                dropped.add(j)
    return [
        replace(
            d, status=f"invalid: contradicts line {', '.join(map(str, sorted(contradicted[i])))}"
        )
        if i in contradicted
        else d
        for i, d in enumerate(decisions)
    ]


def _same_person_path(
    edges: dict[str, list[tuple[str, int]]], dropped: set[int], start: str, goal: str
) -> list[int] | None:
    """Indexes of same_person decisions (not dropped) chaining `start` to `goal`, or None."""
    came_from: dict[str, tuple[str, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = []
            while came_from[node] is not None:
                node, i = came_from[node]
                path.append(i)
            return path
        for neighbour, i in edges[node]:
            if i not in dropped and neighbour not in came_from:
                came_from[neighbour] = (node, i)
                queue.append(neighbour)
    return None


def as_table(decisions: list[Decision]) -> pa.Table:
    return pa.table(
        {
            "line": [d.line for d in decisions],
            "decision": [d.decision for d in decisions],
            "unique_id_a": [d.unique_id_a for d in decisions],
            "unique_id_b": [d.unique_id_b for d in decisions],
            "reason": [d.reason for d in decisions],
            "status": [d.status for d in decisions],
        },
        schema=SCHEMA,
    )


def load_decisions(con: duckdb.DuckDBPyConnection, path: str | Path | None) -> dict[str, int]:
    """Build identity.steward_decisions from the file (empty without one); return the counts.

    Records are looked up in identity.match_input. Counts: applied, unknown, invalid.
    """
    decisions = read_decisions(path) if path else []
    named = sorted(
        {uid for d in decisions for uid in (d.unique_id_a, d.unique_id_b) if uid is not None}
    )
    known = (
        {
            row[0]
            for row in con.execute(
                "select unique_id from identity.match_input where unique_id in (select unnest(?::varchar[]))",
                [named],
            ).fetchall()
        }
        if named
        else set()
    )
    resolved = resolve(decisions, known)
    con.register("steward_decisions_file", as_table(resolved))
    try:
        con.execute(
            f"create or replace table {TABLE} as select * from steward_decisions_file order by line"
        )
    finally:
        con.unregister("steward_decisions_file")
    return decision_counts(con)


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """An empty identity.steward_decisions where a warehouse predates it (for id_changes.sql)."""
    con.execute(
        f"create table if not exists {TABLE} (line bigint, decision varchar, unique_id_a varchar, "
        "unique_id_b varchar, reason varchar, status varchar)"
    )


def decision_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    applied, unknown, invalid = con.execute(
        f"""
        select
            count(*) filter (where status = '{APPLIED}'),
            count(*) filter (where status = '{UNKNOWN_RECORD}'),
            count(*) filter (where status like 'invalid:%')
        from {TABLE}
        """
    ).fetchall()[0]
    return {"applied": applied, "unknown": unknown, "invalid": invalid}


def applied_pairs(con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, pa.Table]:
    """(must_link, cannot_link): the applied decisions' pairs as unique_id_l < unique_id_r."""

    def pairs(decision: str) -> pa.Table:
        return con.sql(
            f"""
            select distinct
                least(unique_id_a, unique_id_b) as unique_id_l,
                greatest(unique_id_a, unique_id_b) as unique_id_r
            from {TABLE}
            where status = '{APPLIED}' and decision = ?
            order by all
            """,
            params=[decision],
        ).to_arrow_table()

    return pairs("same_person"), pairs("different_people")
