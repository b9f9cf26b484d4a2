"""Settling the points ledger's debits: the one step that is not a single SQL model.

Whether a redemption fits the balance depends on every earlier decision (a rejected
redemption leaves points for the next one, and spent points cannot expire), so debits
are settled in rounds. Each round is set-based SQL over every customer still settling
(loyalty/lot_expiry.sql, loyalty/debit_checks.sql): for each customer it decides all
pending debits up to and including the first one that asks for more than is available.
Decisions before that one cannot change any more, so every round settles at least one
debit per customer, and a customer leaves the loop once nothing of theirs is pending.
The number of rounds is the largest number of refused debits of one customer, plus one.
"""

from __future__ import annotations

import duckdb

from assets.shared.warehouse import row_count, run_model

APPLY_DECISIONS = """
update loyalty.debits
set status = checks.decision,
    applied_points = checks.applied_points,
    available_before = checks.available_before,
    reason = checks.reason
from loyalty.debit_checks as checks
where checks.entry_id = debits.entry_id and checks.decision is not null
"""


# The ledger's invariants, each a query counting what breaks it (0 when it holds). The
# blocking asset checks run them after every build; tests run them on their scenarios.
# Within one moment credits come first, then expiries, then debits.
_MOMENT_ORDER = (
    "occurred_at, case when points > 0 then 0 when entry_type = 'expire' then 1 else 2 end"
)
INVARIANTS = {
    "duplicate_entry_ids": "select count(*) - count(distinct entry_id) from loyalty.ledger",
    "negative_running_balances": f"""
        select count(*) from (
            select sum(points) over (
                partition by customer_id order by {_MOMENT_ORDER}, entry_id rows unbounded preceding
            ) as running
            from loyalty.ledger
        )
        where running < 0
    """,
    "balances_off_their_ledger": """
        select count(*)
        from loyalty.balances
        left join (select customer_id, sum(points) as points from loyalty.ledger group by customer_id) as sums
            using (customer_id)
        where balances.points_balance <> coalesce(sums.points, 0)
    """,
    "ledger_customers_without_balance": """
        select count(distinct customer_id) from loyalty.ledger anti join loyalty.balances using (customer_id)
    """,
}

# Cheaper queries that are 0 exactly when their invariant's count is, run first: on a sound
# ledger (every build) the exact count is then known to be 0 without the dearer query.
# - Distinct 64-bit hashes of entry_id, as many as entries, mean distinct entry_ids.
# - Entries of one customer, moment and kind (credit, expiry, debit) all have one sign, so
#   the running balance is lowest (or, for credits, was lowest just before them) at the
#   end of such a group whatever order they are in: whether any entry goes below zero does
#   not depend on the entry_id tie-break, only how many do.
SCREENS = {
    "duplicate_entry_ids": "select count(*) - count(distinct hash(entry_id)) from loyalty.ledger",
    "negative_running_balances": f"""
        select count(*) from (
            select sum(points) over (
                partition by customer_id order by {_MOMENT_ORDER} rows unbounded preceding
            ) as running
            from loyalty.ledger
        )
        where running < 0
    """,
}


def count_violations(con: duckdb.DuckDBPyConnection, invariant: str) -> int:
    """How many entries (or customers) break one invariant; the screen first, when it has one."""
    if invariant in SCREENS and con.execute(SCREENS[invariant]).fetchall()[0][0] == 0:
        return 0
    return con.execute(INVARIANTS[invariant]).fetchall()[0][0]


def broken_invariants(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Each invariant's count of violations; all zero on a sound ledger."""
    return {name: count_violations(con, name) for name in INVARIANTS}


def settle_debits(con: duckdb.DuckDBPyConnection) -> int:
    """Build loyalty.debits and loyalty.lot_expiry with every debit decided; returns the rounds."""
    run_model(con, "loyalty/debits")
    # Round one covers every customer with points. Most never ask for more than they have,
    # so later rounds work on the few who did, and only their lots are worked out again.
    _settling(con, "select distinct customer_id from loyalty.point_movements")
    run_model(con, "loyalty/lot_expiry")
    rounds = 1
    run_model(con, "loyalty/debit_checks")
    con.execute(APPLY_DECISIONS)
    con.execute("alter table loyalty.lot_expiry rename to lot_expiry_round_one")
    while _settling(
        con, "select distinct customer_id from loyalty.debits where status = 'pending'"
    ):
        rounds += 1
        run_model(con, "loyalty/lot_expiry")
        run_model(con, "loyalty/debit_checks")
        con.execute(APPLY_DECISIONS)
    # Round one's lots stand for customers whose debits were all applied as asked; the
    # others' are worked out again with their final decisions.
    _settling(con, "select distinct customer_id from loyalty.debits where status <> 'applied'")
    run_model(con, "loyalty/lot_expiry")
    con.execute(
        "delete from loyalty.lot_expiry_round_one "
        "where customer_id in (select customer_id from loyalty.customers_to_settle)"
    )
    con.execute("insert into loyalty.lot_expiry_round_one select * from loyalty.lot_expiry")
    con.execute("drop table loyalty.lot_expiry")
    con.execute("alter table loyalty.lot_expiry_round_one rename to lot_expiry")
    for table in ("debit_checks", "customers_to_settle"):
        con.execute(f"drop table loyalty.{table}")
    return rounds


def _settling(con: duckdb.DuckDBPyConnection, customers_sql: str) -> int:
    """Set loyalty.customers_to_settle; returns how many there are."""
    con.execute(f"create or replace table loyalty.customers_to_settle as {customers_sql}")
    return row_count(con, "loyalty.customers_to_settle")
