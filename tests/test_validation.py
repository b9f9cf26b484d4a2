"""Quality gates: GX suites give blocking failures, warnings, and masked examples of personal data."""

import duckdb

from assets.shared.catalog import personal_columns
from assets.shared.privacy import mask
from assets.staging.validation import validate_table


def test_mask_keeps_shape_hides_content():
    assert mask("john.smith@gmail.com") == "j" + "*" * 18 + "m"
    assert mask("Bob") == "***"
    assert mask(None) == "null"


def test_personal_columns_come_from_the_schemas():
    assert {"first_name", "email", "phone_e164", "birth_on"} <= personal_columns(
        "staging.web_customers"
    )
    assert "source_record_id" not in personal_columns("staging.web_customers")
    assert {"email", "first_name"} <= personal_columns(
        "raw.web_customers"
    )  # from the export contract


def test_suite_reports_blocking_failures_warnings_and_masked_examples():
    con = duckdb.connect()
    con.execute("create schema staging")
    con.execute(
        """
        create table staging.web_orders as select * from (values
            ('web', 'O1', 'A1', 'purchase', 'completed', timestamp '2026-01-01', 5.00, null::bigint),
            ('web', 'O1', 'A2', 'purchase', 'completed', null, -1.00, null),
            ('web', 'O3', 'A3', 'teleport', 'completed', timestamp '2026-01-01', 2.00, null)
        ) t(source, source_event_id, source_record_id, event_type, status, occurred_at, amount, points)
        """
    )
    outcome = validate_table(con, "staging.web_orders")
    failed = {(o.expectation, o.column): o for o in outcome.blocking_failures}
    assert set(failed) == {
        ("expect_column_values_to_be_unique", "source_event_id"),
        ("expect_column_values_to_not_be_null", "occurred_at"),
        ("expect_column_values_to_be_between", "amount"),
        ("expect_column_values_to_be_in_set", "event_type"),
    }
    assert failed[("expect_column_values_to_be_in_set", "event_type")].examples == [
        "teleport"
    ]  # not personal: shown
    assert failed[("expect_column_values_to_be_unique", "source_event_id")].unexpected_count == 2
    assert outcome.warnings == []


def test_personal_values_are_masked_in_examples():
    con = duckdb.connect()
    con.execute("create schema staging")
    rows = ", ".join(
        f"('web', 'W{i}', null, null, null, null, false, null, false, null, null, null, null, null, null, null, null, null, null, null)"
        for i in range(9)
    )
    con.execute(
        f"""
        create table staging.web_customers as select * from (values {rows},
            ('web', 'W9', 'Ann', 'Lee', 'ann@example.com', null, true, date '1980-01-01', false, null, null, null, null, null, null, null, null, null, null, null)
        ) t(source, source_record_id, first_name, last_name, email, phone_e164, has_invalid_phone, birth_on,
            has_implausible_birth_date, street, street_key, city, postcode, country, registered_at, marketing_opt_in,
            push_opt_in, consent_stated_at, delivered_on, source_file)
        """
    )
    outcome = validate_table(con, "staging.web_customers")
    assert outcome.blocking_failures == []
    warned = {o.column: o for o in outcome.warnings}
    assert warned["email"].unexpected_count == 9
    assert warned["has_invalid_phone"].examples == ["True"]


def test_failed_expectations_reach_the_ui_as_a_table_with_a_summary_line():
    from assets.staging.assets import failed_expectations_table, suite_summary
    from assets.staging.validation import ExpectationOutcome

    failed = [
        ExpectationOutcome(
            "expect_column_values_to_be_unique", "source_event_id", "critical", False, 2, 66.667, []
        ),
        ExpectationOutcome(
            "expect_column_values_to_not_be_null",
            "email",
            "warning",
            False,
            9,
            90.0,
            ["a***@x.com"],
        ),
    ]
    table = failed_expectations_table(failed)
    assert [column.name for column in table.schema.columns] == [
        "severity",
        "expectation",
        "column",
        "failing_rows",
        "failing_percent",
        "examples",
    ]
    assert [record.data for record in table.records] == [
        {
            "severity": "critical",
            "expectation": "expect_column_values_to_be_unique",
            "column": "source_event_id",
            "failing_rows": 2,
            "failing_percent": 66.67,
            "examples": "-",
        },
        {
            "severity": "warning",
            "expectation": "expect_column_values_to_not_be_null",
            "column": "email",
            "failing_rows": 9,
            "failing_percent": 90.0,
            "examples": "a***@x.com",
        },
    ]
    assert suite_summary(8, failed) == (
        "2 of 8 expectations failed (1 critical, 1 warning): see failed_expectations"
    )
    assert suite_summary(8, []) == "all 8 expectations met"


def test_only_the_columns_the_suite_names_are_read():
    from assets.staging.validation import _checked_columns

    suite = {
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "b"}},
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "a"}},
        ]
    }
    assert _checked_columns(suite) == '"a", "b"'
    # An expectation on the whole table (no column) needs every column.
    suite["expectations"].append({"type": "expect_table_row_count_to_be_between", "kwargs": {}})
    assert _checked_columns(suite) == "*"
