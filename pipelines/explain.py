"""`omniloyal identity explain`: why a customer's records are one customer.

Reads the published warehouse: the customer's records (identity.source_records and their
matching keys in identity.match_input), the links that joined them and the links that
were cut (identity.match_evidence), and the stewards' decisions naming its records
(identity.steward_decisions). Values of personal columns (`pii: true` in schemas/) are
masked like the Dagster metadata previews unless asked for.
"""

from __future__ import annotations

import duckdb

from assets.shared.catalog import personal_columns
from assets.shared.privacy import mask

# identity.match_input columns shown for each record, with their headings.
RECORD_FIELDS = {
    "first_name_key": "first name",
    "last_name_key": "last name",
    "email_key": "e-mail",
    "phone_e164": "phone",
    "birth_on": "birth date",
    "postcode": "postcode",
    "street_key": "street",
}
# identity.match_evidence weight columns, with their headings.
WEIGHTS = {
    "name_weight": "name",
    "birth_date_weight": "birth date",
    "email_weight": "e-mail",
    "phone_weight": "phone",
    "address_weight": "address",
}


class UnknownCustomer(LookupError):
    """No record has this customer_id."""


def explain_customer(
    con: duckdb.DuckDBPyConnection, customer_id: str, show_personal_data: bool = False
) -> list[str]:
    """The explanation as lines of text; UnknownCustomer when no record has `customer_id`."""
    records = _records(con, customer_id, show_personal_data)
    if not records:
        raise UnknownCustomer(
            f"no customer {customer_id} in the warehouse (customer_ids are in identity.source_records)"
        )
    ids = [row[0] for row in records]
    assigned = records[0][-1]
    lines = [
        f"customer {customer_id}: {len(records)} record{'s' if len(records) != 1 else ''}, "
        f"customer since {_text(_customer_since(con, customer_id))}, id assigned on {assigned}",
        "personal data shown"
        if show_personal_data
        else "personal data masked (--show-personal-data shows it)",
        "",
        "records",
        *_table(["source", "record id", *RECORD_FIELDS.values()], [row[1:-1] for row in records]),
        f"  (their matching keys; every value beside the profile's: "
        f"select * from core.customer_records where customer_id = '{customer_id}')",
    ]
    joined, cut = _links(con, ids)
    lines += ["", f"links that joined them ({len(joined)})"]
    lines += (
        _table(
            ["record", "other record", "link", "probability", "match weight", *WEIGHTS.values()],
            joined,
        )
        if joined
        else ["  none"]
    )
    lines += ["", f"links that were cut ({len(cut)})"]
    lines += (
        _table(
            [
                "record",
                "other record",
                "its customer",
                "probability",
                "match weight",
                *WEIGHTS.values(),
                "cut by",
            ],
            cut,
        )
        if cut
        else ["  none"]
    )
    decisions = _decisions(con, ids, show_personal_data)
    lines += ["", f"stewards' decisions naming its records ({len(decisions)})"]
    lines += (
        _table(
            ["line", "decision", "record", "other record", "its customer", "status", "reason"],
            decisions,
        )
        if decisions
        else ["  none"]
    )
    return lines


def _records(con: duckdb.DuckDBPyConnection, customer_id: str, show: bool) -> list[tuple]:
    """(unique_id, source, record id, *fields, id_assigned_on) per record of the customer."""
    personal = set() if show else personal_columns("identity.match_input")
    fields = ", ".join(f"match_input.{c}" for c in RECORD_FIELDS)
    # Warehouses published before the rename call the id's assignment date customer_since.
    assigned = (
        "id_assigned_on"
        if "id_assigned_on" in _columns(con, "identity.source_records")
        else "customer_since"
    )
    rows = con.execute(
        f"""
        select
            source_records.source || ':' || source_records.source_record_id,
            source_records.source,
            source_records.source_record_id,
            {fields},
            source_records.{assigned}
        from identity.source_records
        left join identity.match_input using (source, source_record_id)
        where source_records.customer_id = ?
        order by source_records.source, source_records.source_record_id
        """,
        [customer_id],
    ).fetchall()
    shown = []
    for unique_id, source, record_id, *values, since in rows:
        cells = [
            mask(v) if c in personal and v is not None else _text(v)
            for c, v in zip(RECORD_FIELDS, values)
        ]
        shown.append((unique_id, source, record_id, *cells, since))
    return shown


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {row[0] for row in con.execute(f"describe {table}").fetchall()}


def _customer_since(con: duckdb.DuckDBPyConnection, customer_id: str) -> object:
    """When the person joined (core.customers.customer_since); None in warehouses published
    before core.customers had it."""
    if "customer_since" not in _columns(con, "core.customers"):
        return None
    rows = con.execute(
        "select customer_since from core.customers where customer_id = ?", [customer_id]
    ).fetchall()
    return rows[0][0] if rows else None


def _links(con: duckdb.DuckDBPyConnection, ids: list[str]) -> tuple[list[tuple], list[tuple]]:
    """Rows for the links between the records (kept), and the cut links touching them."""
    columns = _columns(con, "identity.match_evidence")
    # Warehouses published before stewards' decisions have no link_source or cut_by.
    link_source = "evidence.link_source" if "link_source" in columns else "'model'"
    cut_by = (
        "evidence.cut_by"
        if "cut_by" in columns
        else "case when not evidence.is_linked then 'conflict guard' end"
    )
    weights = ", ".join(f"evidence.{c}" for c in WEIGHTS)
    rows = con.execute(
        f"""
        with
        mine as (select unnest(?::varchar[]) as unique_id),
        evidence as (select * from identity.match_evidence),
        touching as (
            -- this customer's record first; a pair inside the customer once
            select evidence.*, unique_id_l as this_id, unique_id_r as other_id
            from evidence semi join mine on mine.unique_id = evidence.unique_id_l
            union all by name
            select evidence.*, unique_id_r as this_id, unique_id_l as other_id
            from evidence semi join mine on mine.unique_id = evidence.unique_id_r
            where evidence.unique_id_l not in (select unique_id from mine)
        )
        select
            evidence.is_linked,
            evidence.other_id in (select unique_id from mine) as is_inside,
            evidence.this_id,
            evidence.other_id,
            other.customer_id as other_customer,
            {link_source} as link_source,
            evidence.match_probability,
            evidence.match_weight,
            {weights},
            {cut_by} as cut_by
        from touching as evidence
        left join identity.source_records as other
            on other.source || ':' || other.source_record_id = evidence.other_id
        order by evidence.this_id, evidence.other_id
        """,
        [ids],
    ).fetchall()
    joined, cut = [], []
    for (
        is_linked,
        is_inside,
        this_id,
        other_id,
        other_customer,
        source,
        probability,
        weight,
        *rest,
    ) in rows:
        *field_weights, cut_by = rest
        numbers = [_probability(probability), _weight(weight), *map(_weight, field_weights)]
        if is_linked and is_inside:
            joined.append((this_id, other_id, source, *numbers))
        elif not is_linked:
            customer = "this one" if is_inside else (other_customer or "-")
            cut.append((this_id, other_id, customer, *numbers, cut_by or "-"))
    return joined, cut


def _decisions(con: duckdb.DuckDBPyConnection, ids: list[str], show: bool) -> list[tuple]:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'identity' and table_name = 'steward_decisions'"
    ).fetchall()[0][0]
    if not exists:
        return []
    personal = set() if show else personal_columns("identity.steward_decisions")
    rows = con.execute(
        """
        with
        mine as (select unnest(?::varchar[]) as unique_id),
        decisions as (select * from identity.steward_decisions),
        naming as (
            select
                decisions.*,
                case when unique_id_a in (select unique_id from mine) then unique_id_a else unique_id_b end as this_id,
                case when unique_id_a in (select unique_id from mine) then unique_id_b else unique_id_a end as other_id
            from decisions
            where unique_id_a in (select unique_id from mine) or unique_id_b in (select unique_id from mine)
        )
        select
            naming.line,
            naming.decision,
            naming.this_id,
            naming.other_id,
            case when naming.other_id in (select unique_id from mine) then 'this one' else other.customer_id end,
            naming.status,
            naming.reason
        from naming
        left join identity.source_records as other
            on other.source || ':' || other.source_record_id = naming.other_id
        order by naming.line
        """,
        [ids],
    ).fetchall()
    return [
        (
            line,
            decision or "-",
            this_id,
            other_id or "-",
            customer or "-",
            status,
            mask(reason) if "reason" in personal and reason is not None else _text(reason),
        )
        for line, decision, this_id, other_id, customer, status, reason in rows
    ]


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _probability(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def _weight(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _table(headings: list[str], rows: list[tuple]) -> list[str]:
    """Rows under their headings, each column as wide as its widest cell, indented."""
    cells = [[str(h) for h in headings], *[[_text(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headings))]
    return [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in cells
    ]
