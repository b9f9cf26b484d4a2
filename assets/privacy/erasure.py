"""Erasure: requests to be forgotten applied to the whole person, everywhere in the build.

Where it runs: at the end of ingestion (the raw_deliveries step), right after the run's
deliveries are loaded and before staging. Staging, identity (Splink, its charts and cluster
studio), core, loyalty, marts and the analytics file are all rebuilt from raw, so a person
removed from raw here never reaches any of them in this run; what is carried from run to
run (the previous identity, id history, custom segment members, quarantine) is cleaned here.

Resolving a request to a person (set-based, every pending request at once):

1. Every customer record delivered so far (raw web customers, app users, store members,
   call-center contacts), its e-mail and phone standardized as staging standardizes them.
2. The records the request names: same e-mail, same phone, or the named (source, record id).
3. Each matched record's customer in the PREVIOUS run's identity.source_records (the build
   starts as a copy of the published warehouse). A record not in it yet (first delivered in
   this run, or the very first run) has no customer: matched by e-mail or record id, such
   records count as one unknown person; matched by phone only, each is a person of its own.
4. The request's person is the customer every identifier it gives points to. When an
   identifier points to more than one customer (a family's shared mailbox or phone), the
   request is NOT applied: it is logged as 'needs_review' and nothing is erased or
   suppressed; a steward settles it, e.g. with a request naming the record
   (`omniloyal forget --source web --record-id W123`). A request matching nobody is
   completed with 0 records (its identifiers are still suppressed).
5. Every record of that customer (all its sources, from the previous identity), plus records
   new in this run matching the request's e-mail or record id, is erased.

Erasing: the records' raw rows are deleted (raw text included), and so are quarantine rows
whose text carries one of their e-mails, phones or record ids, their field issues, and every
row of every staging, identity, core, loyalty, marts and quality table naming one of the
records (source + source_record_id, unique_id...) or their customer (any *customer_id column).
Orders, transactions and app events are kept (they hold no personal column): core.events
attributes them to a pseudonymous id (privacy.erased_records), so the ledger keeps their
entries, closed by an 'erasure' entry. A call-center contact is a customer record (name,
phone, e-mail): it is erased whole, goodwill points included.

Partner sales (raw.partner_earnings) are no customer records: the rows carrying a suppressed
e-mail or phone are deleted (their partner points go with them: the row is personal data),
and their keys are listed so the copies outside the build find them by key.

Suppressing: every erased record's `source:record id`, and each e-mail and phone of the
request and of the erased records that no other customer's record holds (a household phone
is never listed), go to privacy.suppressed_identifiers as salted hashes; ingestion drops
future rows carrying them (assets/ingest/suppression.py). The request's own e-mail and
phone are then emptied in raw.erasure_requests. Nothing here logs or returns a value.

Remembering the ids: privacy.erased_customers lists every customer id the erased people
ever had (their ids now, in the run before, and back through identity.id_history), so the
copies outside the build can be scrubbed after the publish (assets/privacy/copies.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from assets.ingest.contract import source_files
from assets.ingest.suppression import (
    TABLE as SUPPRESSED,
)
from assets.ingest.suppression import (
    create_suppression_table,
    customer_record_file,
    record_hash_sql,
    suppressed_sql,
)
from assets.shared.pseudonyms import SALT_VARIABLE, pseudonym_sql
from assets.shared.warehouse import table_exists

ERASED_RECORDS = "privacy.erased_records"
ERASED_CUSTOMERS = "privacy.erased_customers"
ERASURE_LOG = "privacy.erasure_log"
REQUESTS = "raw.erasure_requests"
# Schemas whose tables are searched for rows of erased records or customers.
CLEANED_SCHEMAS = ("staging", "identity", "core", "loyalty", "marts", "quality")
# A value shorter than this is not searched for in quarantine text (it would match anything).
MIN_SEARCHED_CHARS = 4


class ErasureError(ValueError):
    """Erasure cannot run safely; one line, no value."""


@dataclass(frozen=True)
class ErasureOutcome:
    """What this run did, in counts only (for the log and Dagster metadata)."""

    requests: int
    completed: int
    needs_review: int
    records_erased: int
    tables_touched: int
    rows_touched: int


def create_privacy_tables(con: duckdb.DuckDBPyConnection) -> None:
    create_suppression_table(con)
    con.execute(
        f"""
        create table if not exists {ERASED_RECORDS} (
            source varchar not null,
            source_record_id varchar not null,
            erased_customer_id varchar not null,
            request_id varchar not null,
            erased_at timestamp not null
        )"""
    )
    con.execute(
        f"""
        create table if not exists {ERASED_CUSTOMERS} (
            customer_id varchar not null,
            request_id varchar not null
        )"""
    )
    con.execute(
        f"""
        create table if not exists {ERASURE_LOG} (
            request_id varchar not null,
            received_at timestamp,
            completed_at timestamp,
            status varchar not null,
            matched_by varchar not null,
            customers_erased bigint not null,
            records_erased bigint not null,
            identifiers_suppressed bigint not null,
            tables_touched bigint not null,
            rows_touched bigint not null
        )"""
    )


def _record_files():
    """(source, raw table, key column, has email, has phone, has country) per customer-record file."""
    for spec in source_files():
        if customer_record_file(spec.source) == spec:
            names = spec.column_names
            yield spec, spec.key[0], "email" in names, "phone" in names, "country" in names


def _all_records_sql() -> str:
    parts = []
    for spec, key, has_email, has_phone, has_country in _record_files():
        email = "standardize_email(email)" if has_email else "cast(null as varchar)"
        country = ", country" if has_country else ""
        phone = f"standardize_phone(phone{country})" if has_phone else "cast(null as varchar)"
        raw_email = "email" if has_email else "cast(null as varchar)"
        raw_phone = "phone" if has_phone else "cast(null as varchar)"
        parts.append(
            f"select distinct '{spec.source}' as source, {key} as source_record_id, {email} as email, "
            f"{phone} as phone_e164, {raw_email} as raw_email, {raw_phone} as raw_phone from raw.{spec.table}"
        )
    return "\nunion all\n".join(parts)


def apply_erasure_requests(con: duckdb.DuckDBPyConnection, now: datetime) -> ErasureOutcome:
    """Apply every request of raw.erasure_requests not completed yet (see the module's doc).

    Needs the standardizing UDFs and the pseudonym salt on the connection."""
    create_privacy_tables(con)
    if not table_exists(con, REQUESTS):
        return ErasureOutcome(0, 0, 0, 0, 0, 0)
    con.execute(
        f"""
        create or replace temp table erasure_pending as
        select request_id, standardize_email(email) as email, standardize_phone(phone) as phone_e164,
               source, source_record_id, received_at
        from {REQUESTS}
        where request_id not in (select request_id from {ERASURE_LOG} where status = 'completed')
        qualify row_number() over (partition by request_id order by _delivered_on desc, _file desc, _line desc) = 1
        """
    )
    pending = con.execute("select count(*) from erasure_pending").fetchall()[0][0]
    if not pending:
        return ErasureOutcome(0, 0, 0, 0, 0, 0)
    if not con.execute(f"select getvariable('{SALT_VARIABLE}')").fetchall()[0][0]:
        raise ErasureError(
            "erasure requests are pending but no pseudonym salt is set; nothing erased"
        )

    identity = (
        "identity.source_records"
        if table_exists(con, "identity.source_records")
        else "(select null::varchar as source, null::varchar as source_record_id, null::varchar as customer_id where false)"
    )
    con.execute(f"create or replace temp table erasure_all_records as {_all_records_sql()}")
    con.execute(
        f"""
        create or replace temp table erasure_record_customers as
        select distinct records.source, records.source_record_id, known.customer_id
        from erasure_all_records as records
        left join {identity} as known using (source, source_record_id)
        """
    )
    _resolve(con)
    con.execute(
        """
        create or replace temp table erasure_targets as
        -- One pseudonymous id per erased person, random: nothing derives it from them.
        select request_id, unit, 'X' || left(replace(cast(uuid() as varchar), '-', ''), 12) as erased_customer_id
        from erasure_decisions
        where status = 'completed' and unit is not null
        """
    )
    con.execute(
        """
        create or replace temp table erasure_erased as
        with by_customer as (
            select targets.request_id, targets.erased_customer_id, records.source, records.source_record_id,
                   records.customer_id
            from erasure_targets as targets
            join erasure_record_customers as records on records.customer_id = targets.unit
        ),
        new_records as (
            -- Records without a customer yet, named by the request's e-mail or record id.
            select targets.request_id, targets.erased_customer_id, matches.source, matches.source_record_id,
                   cast(null as varchar) as customer_id
            from erasure_targets as targets
            join erasure_matches as matches using (request_id)
            where matches.customer_id is null
                and (matches.kind in ('email', 'record') or matches.unit = targets.unit)
        ),
        everything as (select * from by_customer union all select * from new_records)
        select * from everything
        -- A record named by two requests of the run is erased once, under the first.
        qualify row_number() over (partition by source, source_record_id order by request_id) = 1
        """
    )
    _suppress(con, now)
    _suppress_contact_rows(con, now)
    _list_customer_ids(con)  # before the deletes: they remove the id history it follows
    touched = _delete_everywhere(con)
    con.execute(
        f"""
        insert into {ERASED_RECORDS}
        select source, source_record_id, erased_customer_id, request_id, ?
        from erasure_erased
        where (source, source_record_id) not in (select (source, source_record_id) from {ERASED_RECORDS})
        """,
        [now],
    )
    completed = "select request_id from erasure_decisions where status = 'completed'"
    con.execute(
        f"update {REQUESTS} set email = null, phone = null where request_id in ({completed})"
    )
    tables_touched = sum(1 for rows in touched.values() if rows)
    rows_touched = sum(touched.values())
    con.execute(
        f"delete from {ERASURE_LOG} where request_id in (select request_id from erasure_pending)"
    )
    con.execute(
        f"""
        insert into {ERASURE_LOG}
        select decisions.request_id, pending.received_at,
               case when decisions.status = 'completed' then cast(? as timestamp) end,
               decisions.status, decisions.matched_by,
               coalesce((select count(distinct erased_customer_id)
                  from erasure_erased where erasure_erased.request_id = decisions.request_id), 0),
               coalesce((select count(*) from erasure_erased
                  where erasure_erased.request_id = decisions.request_id), 0),
               coalesce((select count(*) from {SUPPRESSED} as listed
                  where listed.request_id = decisions.request_id and listed.added_on = cast(? as date)), 0),
               case when decisions.status = 'completed' then ? else 0 end,
               case when decisions.status = 'completed' then ? else 0 end
        from erasure_decisions as decisions
        join erasure_pending as pending using (request_id)
        order by decisions.request_id
        """,
        [now, now.date(), tables_touched, rows_touched],
    )
    counts = con.execute(
        "select count(*) filter (where status = 'completed'), count(*) filter (where status = 'needs_review') "
        "from erasure_decisions"
    ).fetchall()[0]
    records = con.execute("select count(*) from erasure_erased").fetchall()[0][0]
    return ErasureOutcome(pending, counts[0], counts[1], records, tables_touched, rows_touched)


def _resolve(con: duckdb.DuckDBPyConnection) -> None:
    """erasure_matches (request, kind, record, customer, unit) and erasure_decisions
    (request, status, unit, matched_by): the one customer every identifier of the request points to."""
    con.execute(
        """
        create or replace temp table erasure_matches as
        with matched as (
            select pending.request_id, 'email' as kind, records.source, records.source_record_id
            from erasure_pending as pending
            join erasure_all_records as records on records.email = pending.email
            union
            select pending.request_id, 'phone', records.source, records.source_record_id
            from erasure_pending as pending
            join erasure_all_records as records on records.phone_e164 = pending.phone_e164
            union
            select pending.request_id, 'record', records.source, records.source_record_id
            from erasure_pending as pending
            join erasure_all_records as records
                on records.source = pending.source and records.source_record_id = pending.source_record_id
        )
        select matched.*, customers.customer_id,
            -- A record without a customer yet: the ones an e-mail or record id names are one
            -- unknown person; each one a phone names is a person of its own (a household).
            coalesce(customers.customer_id,
                     case when matched.kind = 'phone' then 'record:' || matched.source || ':' || matched.source_record_id
                          else 'new' end) as unit
        from matched
        join erasure_record_customers as customers using (source, source_record_id)
        """
    )
    con.execute(
        """
        create or replace temp table erasure_decisions as
        with kind_units as (
            -- Per identifier: the customers it names; records without a customer count only
            -- when it names no known customer.
            select distinct request_id, kind, unit
            from erasure_matches
            qualify customer_id is not null or not bool_or(customer_id is not null) over (partition by request_id, kind)
        ),
        kinds as (
            select request_id, count(distinct kind) as kinds_matched, string_agg(distinct kind, ',' order by kind) as matched_by
            from kind_units group by request_id
        ),
        candidates as (
            -- A customer every matching identifier names.
            select kind_units.request_id, kind_units.unit
            from kind_units join kinds using (request_id)
            group by kind_units.request_id, kind_units.unit, kinds.kinds_matched
            having count(distinct kind_units.kind) = kinds.kinds_matched
        ),
        per_request as (
            select pending.request_id, kinds.kinds_matched, kinds.matched_by,
                   count(candidates.unit) as candidates, min(candidates.unit) as unit
            from erasure_pending as pending
            left join kinds using (request_id)
            left join candidates using (request_id)
            group by all
        )
        select
            request_id,
            case when kinds_matched is null then 'completed'
                 when candidates = 1 then 'completed'
                 else 'needs_review' end as status,
            case when candidates = 1 then unit end as unit,
            coalesce(matched_by, 'none') as matched_by
        from per_request
        """
    )


def _suppress(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """List the hashes of what identified the erased people; an e-mail or phone another
    customer's record still holds is left out (a household's phone stays usable)."""
    con.execute(
        f"""
        insert into {SUPPRESSED}
        with completed as (
            select pending.* from erasure_pending as pending
            join erasure_decisions as decisions using (request_id)
            where decisions.status = 'completed'
        ),
        erased as (
            select erased.request_id, records.*
            from erasure_erased as erased
            join erasure_all_records as records using (source, source_record_id)
        ),
        kept as (
            select records.* from erasure_all_records as records
            anti join erasure_erased as erased using (source, source_record_id)
        ),
        candidates as (
            select request_id, 'email' as kind, email as value from completed where email is not null
            union select request_id, 'phone', phone_e164 from completed where phone_e164 is not null
            union select request_id, 'email', email from erased where email is not null
            union select request_id, 'phone', phone_e164 from erased where phone_e164 is not null
        ),
        listable as (
            select request_id, kind, {pseudonym_sql("value")} as identifier_hash
            from candidates
            where not exists (
                select 1 from kept
                where (candidates.kind = 'email' and kept.email = candidates.value)
                   or (candidates.kind = 'phone' and kept.phone_e164 = candidates.value)
            )
            union
            select request_id, 'record', {record_hash_sql("source", "source_record_id")} from erasure_erased
            union
            select request_id, 'record', {record_hash_sql("source", "source_record_id")}
            from completed where source is not null and source_record_id is not null
        )
        select distinct kind, identifier_hash, request_id, cast(? as date)
        from listable
        where (kind, identifier_hash) not in (select (kind, identifier_hash) from {SUPPRESSED})
        """,
        [now.date()],
    )


def _contact_files():
    """File kinds whose rows name a person by e-mail or phone without being customer
    records (partner sales): erased with the e-mails and phones just suppressed."""
    return [spec for spec in source_files() if spec.identified_by_contact]


def _suppress_contact_rows(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """List the keys (`source:key`) of held rows of contact files carrying a suppressed
    e-mail or phone, under the request that listed it, so the copies outside the build
    (assets/privacy/copies.py) find those rows by key as they find erased records'."""
    for spec in _contact_files():
        raw = f"raw.{spec.table}"
        if not table_exists(con, raw):
            continue
        email = pseudonym_sql("standardize_email(t.email)")
        phone = pseudonym_sql("standardize_phone(t.phone)")
        con.execute(
            f"""
            insert into {SUPPRESSED}
            select distinct 'record', {record_hash_sql(f"'{spec.source}'", f"t.{spec.key[0]}")},
                   min(listed.request_id), cast(? as date)
            from {raw} as t
            join {SUPPRESSED} as listed
                on (listed.kind = 'email' and listed.identifier_hash = {email})
                or (listed.kind = 'phone' and listed.identifier_hash = {phone})
            group by t.{spec.key[0]}
            having ('record', {record_hash_sql(f"'{spec.source}'", f"t.{spec.key[0]}")})
                not in (select (kind, identifier_hash) from {SUPPRESSED})
            """,
            [now.date()],
        )


def _list_customer_ids(con: duckdb.DuckDBPyConnection) -> None:
    """privacy.erased_customers: every customer id the erased people ever had.

    Older files (previous versions, exports of earlier dates, what went to ad platforms as
    extern_id) hold them under the id of their day, so the copies are scrubbed by these ids
    (assets/privacy/copies.py). Their ids now (the previous identity.source_records) and in the
    run before (identity.previous_source_records), then back through identity.id_history (old
    -> new) to every id those came from. An id a record not erased still holds (after a split
    the old id lives on with the other person) is left out: listing it would take that
    person's rows out of every copy; the erased person's rows under it are still found there
    by their record keys and hashed e-mails and phones."""
    empty = "(select null::varchar as source, null::varchar as source_record_id, null::varchar as customer_id where false)"

    def table_or_empty(table: str, empty_sql: str) -> str:
        return table if table_exists(con, table) else empty_sql

    current = table_or_empty("identity.source_records", empty)
    previous = table_or_empty("identity.previous_source_records", empty)
    history = table_or_empty(
        "identity.id_history",
        "(select null::varchar as old_customer_id, null::varchar as new_customer_id where false)",
    )
    con.execute(
        f"""
        insert into {ERASED_CUSTOMERS}
        with recursive held_by_others as (
            select distinct kept.customer_id
            from {current} as kept
            anti join erasure_erased as erased using (source, source_record_id)
            where kept.customer_id is not null
        ),
        held_then as (
            select request_id, customer_id from erasure_erased where customer_id is not null
            union
            select erased.request_id, previous.customer_id
            from erasure_erased as erased
            join {previous} as previous using (source, source_record_id)
            where previous.customer_id is not null
        ),
        ever(request_id, customer_id) as (
            select request_id, customer_id from held_then
            union  -- not union all: a cycle in the history ends instead of looping
            select ever.request_id, history.old_customer_id
            from ever
            join {history} as history on history.new_customer_id = ever.customer_id
            -- the other person's id is not followed back: its past is theirs
            where history.old_customer_id is not null
                and ever.customer_id not in (select customer_id from held_by_others)
        )
        select customer_id, min(request_id)  -- an id two requests of the run reach: listed once
        from ever
        where customer_id not in (select customer_id from held_by_others)
            and customer_id not in (select customer_id from {ERASED_CUSTOMERS})
        group by customer_id
        """
    )


def _delete_everywhere(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Delete every row of the erased records and their customers; returns rows per table."""
    touched: dict[str, int] = {}
    con.execute(
        """
        create or replace temp table erasure_ids as
        select distinct source, source_record_id, source || ':' || source_record_id as unique_id
        from erasure_erased
        """
    )
    con.execute(
        """
        create or replace temp table erasure_customers as
        select distinct customer_id from erasure_erased where customer_id is not null
        """
    )
    # Values quarantine text is searched for: as delivered, and as standardized.
    con.execute(
        f"""
        create or replace temp table erasure_values as
        select distinct lower(value) as value from (
            select unnest([records.raw_email, records.raw_phone, records.email, records.phone_e164]) as value
            from erasure_all_records as records join erasure_ids using (source, source_record_id)
        ) where length(value) >= {MIN_SEARCHED_CHARS}
        """
    )

    def delete(table: str, where: str, delivery_column: str | None = None) -> None:
        if delivery_column:
            # The manifest keeps adding up: rows read = loaded + quarantined + suppressed,
            # of which rows_erased were deleted since (checked by nothing_lost_in_ingestion).
            con.execute(
                f"""
                update raw.deliveries set rows_erased = coalesce(rows_erased, 0) + gone.n
                from (select {delivery_column} as delivery_id, count(*) as n from {table} where {where} group by 1) as gone
                where deliveries.delivery_id = gone.delivery_id
                """
            )
        before = con.execute(f"select count(*) from {table}").fetchall()[0][0]
        con.execute(f"delete from {table} where {where}")
        after = con.execute(f"select count(*) from {table}").fetchall()[0][0]
        touched[table] = touched.get(table, 0) + before - after

    # Quarantine rows are raw text: those carrying an erased record's e-mail, phone or id.
    if table_exists(con, "quality.quarantine"):
        delete(
            "quality.quarantine",
            "exists (select 1 from erasure_values where contains(lower(raw), erasure_values.value)) "
            "or exists (select 1 from erasure_ids where quarantine.source = erasure_ids.source and ("
            "contains(raw, '\"' || erasure_ids.source_record_id || '\"') "
            "or starts_with(raw, erasure_ids.source_record_id || ',') "
            "or contains(raw, ',' || erasure_ids.source_record_id || ',')))",
            "delivery_id",
        )
    for spec, key, *_ in _record_files():
        raw = f"raw.{spec.table}"
        if table_exists(con, "quality.field_issues"):
            delete(
                "quality.field_issues",
                f"(file, line) in (select (_file, _line) from {raw} "
                f"where {key} in (select source_record_id from erasure_ids where source = '{spec.source}'))",
            )
        delete(
            raw,
            f"{key} in (select source_record_id from erasure_ids where source = '{spec.source}')",
            "_delivery_id",
        )
    # Partner sales carrying a suppressed e-mail or phone: what ingestion would now drop.
    for spec in _contact_files():
        raw = f"raw.{spec.table}"
        if not table_exists(con, raw):
            continue
        carries = suppressed_sql(spec)
        if table_exists(con, "quality.field_issues"):
            delete(
                "quality.field_issues",
                f"(file, line) in (select (_file, _line) from {raw} where {carries})",
            )
        delete(raw, carries, "_delivery_id")
    for table, columns in _tables_with_columns(con).items():
        if table in ("quality.quarantine", "quality.field_issues"):
            continue
        conditions = []
        if {"source", "source_record_id"} <= columns:
            conditions.append(
                "(source, source_record_id) in (select (source, source_record_id) from erasure_ids)"
            )
        for column in sorted(c for c in columns if c.startswith("unique_id")):
            conditions.append(f"{column} in (select unique_id from erasure_ids)")
        for column in sorted(c for c in columns if c.endswith("customer_id")):
            conditions.append(f"{column} in (select customer_id from erasure_customers)")
        if conditions:
            delete(table, " or ".join(conditions))
    return touched


def _tables_with_columns(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    schemas = ", ".join(f"'{schema}'" for schema in CLEANED_SCHEMAS)
    rows = con.execute(
        f"""
        select columns.table_schema || '.' || columns.table_name, list(columns.column_name)
        from information_schema.columns as columns
        join information_schema.tables as tables using (table_catalog, table_schema, table_name)
        where columns.table_schema in ({schemas}) and tables.table_type = 'BASE TABLE'
            and columns.table_catalog = current_database()
        group by all order by 1
        """
    ).fetchall()
    return {table: set(columns) for table, columns in rows}
