"""Standardizers: exact outputs for known cases, the DuckDB functions, and never raising."""

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.standardizers import (
    canonical_first_name,
    email_match_key,
    full_name_first,
    full_name_last,
    name_match_key,
    register_udfs,
    split_full_name,
    standardize_email,
    standardize_name,
    standardize_phone,
    standardize_postcode,
    standardize_street,
    udf_functions,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("JOHN  SMITH", "John Smith"),
        ("john smith", "John Smith"),
        ("o'brien", "O'Brien"),
        ("mary-jane", "Mary-Jane"),
        ("McDONALD", "Mcdonald"),
        ("  josé ", "José"),
        ("ZOË", "Zoë"),
        ("   ", None),
        (None, None),
    ],
)
def test_standardize_name(text, expected):
    assert standardize_name(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("O'Brien", "obrien"), ("José", "jose"), ("Müller", "muller"), ("Siobhán", "siobhan"), ("Anne-Marie", "annemarie"), ("--", None)],
)
def test_name_match_key(text, expected):
    assert name_match_key(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Smith, John", ("John", "Smith")),
        ("SMITH, JOHN", ("John", "Smith")),
        ("John Smith", ("John", "Smith")),
        ("John Paul Smith", ("John", "Smith")),
        ("Mr John Smith", ("John", "Smith")),
        ("de la Cruz, Maria", ("Maria", "De La Cruz")),
        ("Madonna", ("Madonna", None)),
        ("", (None, None)),
    ],
)
def test_split_full_name(text, expected):
    assert split_full_name(text) == expected
    assert (full_name_first(text), full_name_last(text)) == expected


@pytest.mark.parametrize(
    "text, expected",
    [("Bob", "robert"), ("Robert", "robert"), ("Liz", "elizabeth"), ("Bill", "william"), ("Kate", "katherine"), ("Zoë", "zoe"), (None, None)],
)
def test_canonical_first_name(text, expected):
    assert canonical_first_name(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("  John.Smith@GMail.com ", "john.smith@gmail.com"),
        ("not-an-email", None),
        ("a..b@example.com", None),
        ("a@b.test", None),
        ("two words@example.com", None),
        ("josé@exämple.com", "josé@exämple.com"),
    ],
)
def test_standardize_email(text, expected):
    assert standardize_email(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("J.Smith+news@gmail.com", "jsmith@gmail.com"),
        ("j.smith@googlemail.com", "jsmith@gmail.com"),
        ("john+shop@outlook.com", "john@outlook.com"),
        ("john.smith+x@btinternet.com", "john.smith+x@btinternet.com"),
        ("john-x@yahoo.co.uk", "john-x@yahoo.co.uk"),
        ("+tag@gmail.com", None),
    ],
)
def test_email_match_key(text, expected):
    assert email_match_key(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("07911 123456", "+447911123456"),
        ("+44 7911 123456", "+447911123456"),
        ("447911123456", "+447911123456"),
        ("(07911) 123-456", "+447911123456"),
        ("0044 7911 123456", "+447911123456"),
        ("12345", None),
        # Ofcom's drama range 07700 900xxx is reserved, so not a valid number.
        ("07700 900123", None),
        ("call me", None),
    ],
)
def test_standardize_phone(text, expected):
    assert standardize_phone(text, "GB") == expected


def test_standardize_phone_uses_the_default_region():
    assert standardize_phone("(415) 555-2671", "US") == "+14155552671"
    assert standardize_phone("(415) 555-2671", "GB") is None


@pytest.mark.parametrize(
    "text, expected",
    [("sw1a1aa", "SW1A 1AA"), (" ec1a  1bb ", "EC1A 1BB"), ("M1 1AE", "M1 1AE"), ("not a postcode", "NOT A POSTCODE")],
)
def test_standardize_postcode(text, expected):
    assert standardize_postcode(text, "GB") == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12 High Street", "12 high st"),
        ("12 high st.", "12 high st"),
        ("Flat 2, 7 Church Avenue", "flat 2 7 church ave"),
        ("4 Station Rd", "4 station rd"),
        ("9 Rue de l'Église", "9 rue de l eglise"),
    ],
)
def test_standardize_street(text, expected):
    assert standardize_street(text) == expected


def test_duckdb_functions_match_the_python_functions():
    con = duckdb.connect()
    register_udfs(con, "GB")
    register_udfs(con, "GB")  # registering again is harmless
    values = ["07911 123456", "Smith, John", "J.Smith+x@gmail.com", "12 High Street", "sw1a1aa", "Bob", None]
    con.execute("create table t as select unnest(?::varchar[]) as x", [values])
    for name, function in udf_functions("GB").items():
        got = [row[0] for row in con.execute(f"select {name}(x) from t").fetchall()]
        assert got == [function(v) for v in values], name
    assert con.execute("select standardize_phone(x) from t where x is null or x like '07%'").fetchall() == [("+447911123456",), (None,)]


ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=("Cs",)), max_size=80) | st.text(max_size=600)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_standardizers_never_raise_and_keys_are_idempotent(text):
    for name, function in udf_functions("GB").items():
        result = function(text)
        assert result is None or isinstance(result, str), name
    first, last = split_full_name(text)
    assert first is None or isinstance(first, str)
    assert last is None or isinstance(last, str)
    key = name_match_key(text)
    if key is not None:
        assert name_match_key(key) == key
    email_key = email_match_key(text)
    if email_key is not None:
        assert email_match_key(email_key) == email_key
