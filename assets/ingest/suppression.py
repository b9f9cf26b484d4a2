"""The suppression list: delivered rows of erased people are dropped at ingestion.

Source systems keep sending the rows of a person who asked to be forgotten (a nightly
full export still has their account). privacy.suppressed_identifiers holds salted hashes
(assets/shared/pseudonyms.py) of what identified them: their e-mail, their phone (only when
nobody else holds it: never a household's shared phone) and the key of every record erased
(kind 'record', `source:source_record_id`). A delivered row is dropped when

- it is a customer record (web customer, app user, store member, call-center contact) whose
  standardized e-mail, standardized phone or own key hashes into the list, or
- it is an order, transaction or app event of a listed record (its account_id, user_id or
  card_number is the key of the source's customer-record file).

Dropped rows are counted per delivery (raw.deliveries.rows_suppressed, shown in
quality.source_summary) and kept nowhere: not in raw, not in quarantine (whose raw text
would bring the person back). Rows read = loaded + quarantined + suppressed. The list is
filled by the erasure (assets/privacy/erasure.py); this module only honours it.

A line that cannot even be split into fields (the wrong number of fields, not JSON) has no
identifier to compare and is quarantined as before: the one way a suppressed person's text
can still reach quality.quarantine; the next erasure of them finds and deletes it there.
"""

from __future__ import annotations

import duckdb

from assets.ingest.contract import SourceFile, source_files
from assets.shared.pseudonyms import SALT_VARIABLE, pseudonym_sql

TABLE = "privacy.suppressed_identifiers"
KINDS = ("email", "phone", "record")


class SuppressionError(ValueError):
    """The list cannot be honoured (no salt to hash with); one line, no value."""


def create_suppression_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists privacy")
    con.execute(
        f"""
        create table if not exists {TABLE} (
            kind varchar not null,
            identifier_hash varchar not null,
            request_id varchar not null,
            added_on date not null
        )"""
    )


def suppression_active(con: duckdb.DuckDBPyConnection) -> bool:
    """True when the list has entries: then every delivery is filtered, and the salt must be set."""
    create_suppression_table(con)
    listed = con.execute(f"select count(*) from {TABLE}").fetchall()[0][0]
    if not listed:
        return False
    salt = con.execute(f"select getvariable('{SALT_VARIABLE}')").fetchall()[0][0]
    if not salt:
        # Without the salt no hash matches and every erased person would come back unseen.
        raise SuppressionError(
            f"{TABLE} lists {listed} identifiers but no pseudonym salt is set on the connection; "
            "ingestion cannot honour the suppression list"
        )
    return True


def customer_record_file(source: str) -> SourceFile | None:
    """The file kind of a source whose rows are customer records (they carry an e-mail or a phone)."""
    for spec in source_files():
        if (
            spec.source == source
            and spec.customer_records
            and any(c.name in ("email", "phone") for c in spec.columns)
        ):
            return spec
    return None


def record_column(spec: SourceFile) -> str | None:
    """The column of a file kind naming the customer record a row belongs to: the key of a
    customer-record file itself, else the column of an event file named after that key
    (web orders' account_id, app events' user_id, store transactions' card_number)."""
    if not spec.customer_records:
        return None
    records = customer_record_file(spec.source)
    if records is None or len(records.key) != 1:
        return None
    return records.key[0] if records.key[0] in spec.column_names else None


def record_hash_sql(source_sql: str, record_id_sql: str) -> str:
    """The hash a record is listed under: pseudonym of `source:source_record_id`."""
    return pseudonym_sql(f"{source_sql} || ':' || {record_id_sql}")


def suppressed_sql(spec: SourceFile) -> str | None:
    """A boolean SQL expression over a typed delivery's columns: the row carries a listed
    identifier. None for a file kind that is never suppressed (erasure requests).

    Standardized exactly as staging standardizes (standardize_email, standardize_phone in
    the web account's country), so the UDFs must be registered on the connection."""
    if not spec.customer_records and not spec.identified_by_contact:
        return None
    tests = []
    names = spec.column_names

    def listed(kind: str, hashed: str) -> str:
        return f"{hashed} in (select identifier_hash from {TABLE} where kind = '{kind}')"

    # A partner sale names its person by e-mail or phone alone: those are what is listed.
    is_record_file = customer_record_file(spec.source) == spec or spec.identified_by_contact
    if is_record_file and "email" in names:
        tests.append(listed("email", pseudonym_sql("standardize_email(email)")))
    if is_record_file and "phone" in names:
        country = ", country" if "country" in names else ""
        tests.append(listed("phone", pseudonym_sql(f"standardize_phone(phone{country})")))
    column = record_column(spec)
    if column is not None:
        tests.append(listed("record", record_hash_sql(f"'{spec.source}'", column)))
    if not tests:
        return None
    return "coalesce(" + " or ".join(tests) + ", false)"
