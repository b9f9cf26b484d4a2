"""What a suite reports on small crafted tables with failures, every figure counted by hand.

These outcomes were the same before the validation got faster (one frame built from Arrow,
one batch, BASIC results): success, unexpected_count, unexpected_percent and the masked
examples are the contract of the staging checks.
"""

import duckdb
import pandas as pd
import pytest

from assets.staging.validation import ExpectationOutcome, suite_frame, validate_table

NOT_NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"
IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"


def outcome(expectation, column, severity, success, count, percent, examples):
    return ExpectationOutcome(expectation, column, severity, success, count, percent, examples)


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema staging")
    yield con
    con.close()


def test_store_transactions_suite_counts_by_hand(con):
    con.execute(
        """
        create table staging.store_transactions as select
            source, source_event_id, source_record_id, event_type, 'completed' as status,
            occurred_at, cast(amount as decimal(18, 2)) as amount, cast(points as bigint) as points,
            cast(null as date) as refunded_on, date '2026-11-01' as delivered_on
        from (values
            ('store', 'T1', 'C1', 'purchase', timestamp '2026-10-01 10:00', 10.00, null),
            ('store', 'T2', null, 'purchase', timestamp '2026-10-01 11:00', 5.50, null),
            ('store', 'T2', 'C3', 'return', timestamp '2026-10-02 09:00', -2.50, null),
            ('shop', 'T4', 'C4', 'redeem', timestamp '2026-10-03 09:00', null, 100),
            ('store', 'T5', null, 'refund', null, 1.00, null),
            ('store', null, 'C6', 'purchase', timestamp '2026-10-04 09:00', 0.00, -5),
            ('store', 'T7', null, 'purchase', timestamp '2026-10-05 09:00', 3.00, null),
            ('store', 'T8', 'C8', 'purchase', timestamp '2026-10-06 09:00', 4.00, null),
            ('store', 'T9', 'C9', 'purchase', timestamp '2026-10-07 09:00', 2.00, null),
            ('store', 'T2', 'C10', 'purchase', timestamp '2026-10-08 09:00', -0.01, null)
        ) t(source, source_event_id, source_record_id, event_type, occurred_at, amount, points)
        """
    )
    result = validate_table(con, "staging.store_transactions")
    assert result.rows == 10
    assert result.outcomes == [
        # 1 null id of 10 rows.
        outcome(NOT_NULL, "source_event_id", "critical", False, 1, 10.0, ["nan"]),
        # T2 three times among the 9 ids that are not null: all three are duplicates.
        outcome(UNIQUE, "source_event_id", "critical", False, 3, 3 / 9 * 100, ["T2", "T2", "T2"]),
        outcome(IN_SET, "source", "critical", False, 1, 10.0, ["shop"]),
        outcome(IN_SET, "event_type", "critical", False, 1, 10.0, ["refund"]),
        outcome(NOT_NULL, "occurred_at", "critical", False, 1, 10.0, ["NaT"]),
        # 9 amounts are known; -2.50 and -0.01 are below 0 (shown as the float they are read as).
        outcome(BETWEEN, "amount", "critical", False, 2, 2 / 9 * 100, ["-2.5", "-0.01"]),
        # 2 points are known; -5 is below 0.
        outcome(BETWEEN, "points", "critical", False, 1, 50.0, ["-5"]),
        # 3 of 10 cards missing: 70% known meets mostly 0.6, so a warning that passes.
        outcome(NOT_NULL, "source_record_id", "warning", True, 3, 30.0, ["nan"] * 3),
    ]


def test_web_customers_suite_masks_personal_examples(con):
    con.execute(
        """
        create table staging.web_customers as select
            'web' as source, source_record_id, cast(null as varchar) as first_name,
            cast(null as varchar) as last_name, email, cast(null as varchar) as phone_e164,
            has_invalid_phone, birth_on, false as has_implausible_birth_date
        from (values
            ('W1', 'ann@example.com', false, date '1980-01-01'),
            ('W2', null, true, null),
            ('W1', 'bob@example.com', null, date '1990-05-05'),
            ('W4', 'cy@example.org', false, null)
        ) t(source_record_id, email, has_invalid_phone, birth_on)
        """
    )
    result = validate_table(con, "staging.web_customers")
    assert result.outcomes == [
        outcome(NOT_NULL, "source_record_id", "critical", True, 0, 0.0, []),
        outcome(UNIQUE, "source_record_id", "critical", False, 2, 50.0, ["W1", "W1"]),
        outcome(IN_SET, "source", "critical", True, 0, 0.0, []),
        # 3 of 4 e-mails known: 75% < mostly 0.9. A missing value of a text or date column
        # reaches GX as NaN or NaT, so it is shown as "nan" / "NaT", masked "***" in personal
        # columns; a column with no value at all arrives as None ("null").
        outcome(NOT_NULL, "email", "warning", False, 1, 25.0, ["***"]),
        # No phone at all: every row fails.
        outcome(NOT_NULL, "phone_e164", "warning", False, 4, 100.0, ["null"] * 4),
        # 1 of the 3 known flags is true: 66.7% < mostly 0.95.
        outcome(IN_SET, "has_invalid_phone", "warning", False, 1, 1 / 3 * 100, ["True"]),
        # 2 of 4 birth dates known: 50% meets mostly 0.5.
        outcome(NOT_NULL, "birth_on", "warning", True, 2, 50.0, ["***", "***"]),
        outcome(IN_SET, "has_implausible_birth_date", "warning", True, 0, 0.0, []),
    ]


def test_the_frame_is_the_one_duckdb_df_gives(con):
    """Text through Arrow, the rest through .df(): equal to .df() in values, dtypes and order,
    including the dtypes .df() picks from the data (a null in a BIGINT makes it Int64)."""
    con.execute(
        """
        create table staging.kinds as select
            'id' || i as text_full,
            case when i % 3 = 0 then null else 'é' || i end as text_some,
            cast(null as varchar) as text_none,
            i as int_full,
            case when i % 4 = 0 then null else i end as int_some,
            i % 2 = 0 as bool_full,
            case when i % 5 = 0 then null else i % 2 = 0 end as bool_some,
            cast(i / 8 - 1 as decimal(18, 2)) as money,
            i / 7 as ratio,
            date '2026-01-01' + cast(i as integer) as day,
            case when i % 6 = 0 then null else timestamp '2026-01-01' + to_seconds(i) end as ts
        from range(5000) t(i)
        """
    )
    columns = "text_full, text_some, text_none, int_full, int_some, bool_full, bool_some, money, ratio, day, ts"
    expected = con.execute(f"select {columns} from staging.kinds").df()
    built = suite_frame(con, "staging.kinds", columns)
    pd.testing.assert_frame_equal(built, expected, check_exact=True)
    assert str(built["int_some"].dtype) == "Int64" and str(built["text_none"].dtype) == "object"
    # A table without rows: every column as .df() types it.
    con.execute("create table staging.empty as select * from staging.kinds limit 0")
    pd.testing.assert_frame_equal(
        suite_frame(con, "staging.empty", "*"), con.execute("select * from staging.empty").df()
    )
