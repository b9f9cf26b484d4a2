"""Marketing's own segments: conditions from the program file, run as parameterized SQL.

A condition names a column, an operator and a value. The column must be a documented,
non-personal column of marts.segments or loyalty.balances (assets.loyalty.program checks this
on load, and `segment_query` checks it again), the operator one of a fixed list, and the
value is always a bound parameter, never SQL text: a definition cannot inject SQL.
"""

from __future__ import annotations

import duckdb

from assets.loyalty.program import CONDITION_OPS, CustomSegment, segment_columns

MEMBERS_TABLE = "marts.custom_segment_members"


def segment_query(segment: CustomSegment) -> tuple[str, list]:
    """The select of the segment's customer_ids, and its parameters."""
    allowed = segment_columns()
    clauses, parameters = [], []
    for condition in segment.conditions:
        if condition.column not in allowed or condition.op not in CONDITION_OPS:
            raise ValueError(f"segment {segment.name!r}: condition {condition} is not allowed")
        column = f'"{condition.column}"'
        if condition.op == "in":
            clauses.append(f"{column} in ({', '.join('?' for _ in condition.value)})")
            parameters.extend(condition.value)
        else:
            clauses.append(f"{column} {condition.op} ?")
            parameters.append(condition.value)
    sql = (
        "select customer_id from marts.segments join loyalty.balances using (customer_id) "
        f"where {' and '.join(clauses)}"
    )
    return sql, parameters


def write_custom_segment_members(
    con: duckdb.DuckDBPyConnection, segments: list[CustomSegment]
) -> dict[str, int]:
    """marts.custom_segment_members for every custom segment; returns members per segment."""
    con.execute(
        f"create or replace table {MEMBERS_TABLE} (customer_id varchar, segment varchar, channel varchar)"
    )
    counts = {}
    for segment in segments:
        sql, parameters = segment_query(segment)
        con.execute(
            f"insert into {MEMBERS_TABLE} select customer_id, ?, ? from ({sql}) order by customer_id",
            [segment.name, segment.channel, *parameters],
        )
        counts[segment.name] = con.execute(
            f"select count(*) from {MEMBERS_TABLE} where segment = ?", [segment.name]
        ).fetchall()[0][0]
    return counts
