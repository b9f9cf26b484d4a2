"""Standardizers: exact outputs for known cases, the DuckDB functions, and never raising."""

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets.staging.standardizers import (
    canonical_first_name,
    email_match_key,
    full_name_first,
    full_name_last,
    is_valid_phone,
    name_match_key,
    read_phone,
    region_for_country,
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
    [
        ("O'Brien", "obrien"),
        ("José", "jose"),
        ("Müller", "muller"),
        ("Siobhán", "siobhan"),
        ("Anne-Marie", "annemarie"),
        ("--", None),
    ],
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
    [
        ("Bob", "robert"),
        ("Robert", "robert"),
        ("Liz", "elizabeth"),
        ("Bill", "william"),
        ("Kate", "katherine"),
        ("Zoë", "zoe"),
        (None, None),
    ],
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
    "text, expected, valid",
    [
        ("07911 123456", "+447911123456", True),
        ("+44 7911 123456", "+447911123456", True),
        ("447911123456", "+447911123456", True),
        ("(07911) 123-456", "+447911123456", True),
        ("0044 7911 123456", "+447911123456", True),
        ("7911 123456", "+447911123456", True),  # the trunk 0 left out
        ("12345", None, None),
        # Ofcom's drama range 07700 900xxx is reserved: not valid, but the right length for a
        # UK number, so it is kept as a weaker key.
        ("07700 900123", "+447700900123", False),
        ("call me", None, None),
    ],
)
def test_standardize_phone(text, expected, valid):
    assert standardize_phone(text, "GB") == expected
    assert is_valid_phone(text, "GB") is valid


@pytest.mark.parametrize(
    "text", ["(916) 658-1680", "916.658.1680", "1-916-658-1680", "+1 916 658 1680", "916-658-1680"]
)
def test_us_numbers_in_every_format_the_us_exports_use(text):
    assert read_phone(text, "US") == ("+19166581680", True)
    # Read in the wrong region, a national US number becomes another country's number:
    # the region matters (see infer_phone_region).
    if not text.startswith(("+", "1")):
        assert standardize_phone(text, "GB") != "+19166581680"


def test_standardize_phone_uses_the_default_region():
    assert standardize_phone("(415) 555-2671", "US") == "+14155552671"
    assert standardize_phone("0412 345 678", "AU") == "+61412345678"
    # In GB the same digits are only a possible number (a weak key), never the US one.
    assert read_phone("(415) 555-2671", "GB") == ("+444155552671", False)
    # A UK number written for abroad is read whatever the region, 00 included where it dials 011.
    assert read_phone("0044 7911 123456", "US") == ("+447911123456", True)


@pytest.mark.parametrize(
    "country, expected",
    [
        ("US", "US"),
        (" us ", "US"),
        ("gb", "GB"),
        ("UK", "GB"),
        ("AU", "AU"),
        ("Narnia", "FR"),
        ("", "FR"),
        (None, "FR"),
    ],
)
def test_a_records_country_decides_its_phone_region(country, expected):
    assert region_for_country(country, "FR") == expected


REGIONS = ["GB", "US", "CA", "AU", "NZ", "IE", "DE", "FR", "NL", "IN", "IT", "ES", "MX", "BR", "AR"]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(REGIONS),
    st.sampled_from(["", "+", "00", "0", "1"]),
    st.sampled_from(["", "1", "44", "61", "49", "91", "39"]),
    st.text(alphabet="0123456789", min_size=6, max_size=12),
)
def test_the_fast_path_agrees_with_the_parser(region, prefix, country, digits):
    """Whatever the shortcut answers, phonenumbers' parser answers the same number."""
    import phonenumbers

    from assets.staging.standardizers import _e164_without_parsing

    compact = prefix + country + digits
    fast = _e164_without_parsing(compact, region)
    if fast is not None:
        candidates = [compact] + (
            ["+" + compact.lstrip("+")] if not compact.startswith(("+", "0")) else []
        )
        if compact.startswith("00"):
            candidates.append("+" + compact[2:])
        parsed = []
        for candidate in candidates:
            try:
                number = phonenumbers.parse(candidate, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                parsed.append(
                    phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                )
        assert parsed[:1] == [fast], (compact, region)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("sw1a1aa", "SW1A 1AA"),
        (" ec1a  1bb ", "EC1A 1BB"),
        ("M1 1AE", "M1 1AE"),
        ("not a postcode", "NOT A POSTCODE"),
    ],
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
    values = [
        "07911 123456",
        "Smith, John",
        "J.Smith+x@gmail.com",
        "12 High Street",
        "sw1a1aa",
        "Bob",
        None,
    ]
    con.execute("create table t as select unnest(?::varchar[]) as x", [values])
    for name, function in udf_functions("GB").items():
        got = [row[0] for row in con.execute(f"select {name}(x) from t").fetchall()]
        assert got == [function(v) for v in values], name
    assert con.execute(
        "select standardize_phone(x) from t where x is null or x like '07%'"
    ).fetchall() == [("+447911123456",), (None,)]


def test_the_phone_functions_read_each_record_in_its_own_country():
    import pyarrow as pa

    con = duckdb.connect()
    assert register_udfs(con, "GB").region == "GB"
    cases = [
        # phone, country, standardize_phone(phone, country), is_valid_phone(phone, country)
        ("(916) 658-1680", "US", "+19166581680", True),
        ("916.658.1680", " us ", "+19166581680", True),
        ("07911 123456", "gb", "+447911123456", True),
        ("07911 123456", "Narnia", "+447911123456", True),  # not a country: the run's region
        ("07911 123456", None, "+447911123456", True),
        ("07700 900123", "UK", "+447700900123", False),
        ("0412 345 678", "AU", "+61412345678", True),
        (None, "US", None, None),
        ("call me", "US", None, None),
    ]
    # Many rows, so DuckDB hands the function several batches and the cache is used across them.
    rows = cases * 1000
    con.register("t", pa.table({"p": [r[0] for r in rows], "c": [r[1] for r in rows]}))
    got = con.execute(
        "select p, c, standardize_phone(p, c), is_valid_phone(p, c) from t"
    ).fetchall()
    assert sorted(set(got), key=str) == sorted(set(cases), key=str)
    # The one-argument forms read every phone in the run's region.
    assert con.execute(
        "select standardize_phone('(916) 658-1680'), is_valid_phone('07700 900123'), getvariable('phone_region')"
    ).fetchall() == [
        ("+449166581680", False, "GB")
    ]  # in GB, 0916 658 1680 is a (premium-rate) number


ANY_TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=("Cs",)), max_size=80
) | st.text(max_size=600)


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


def test_fast_phone_validity_is_phonenumbers_is_valid_number():
    """is_valid_national_number answers as phonenumbers.is_valid_number on every region's
    example numbers of every type and on their neighbours: the last digits changed, one digit
    more or less, and random numbers starting like them (valid and invalid both occur)."""
    import random

    import phonenumbers

    from assets.staging.standardizers import is_valid_national_number

    rng = random.Random(7)
    cases: set[tuple[int, str]] = set()
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in phonenumbers.PhoneNumberType.values():
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            cc, national = example.country_code, str(example.national_number)
            cases.add((cc, national))
            cases.update((cc, national[:-1] + d) for d in "0123456789")
            cases.update((cc, national[:-2] + f"{n:02d}") for n in rng.sample(range(100), 5))
            cases.update({(cc, national[:-1]), (cc, national + "5")})
            for _ in range(4):
                head = national[: rng.randint(1, 3)]
                tail = "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 10)))
                cases.add((cc, head + tail))
    cases = {(cc, n) for cc, n in cases if n and n[0] != "0"}
    valid = 0
    for cc, national in sorted(cases):
        number = phonenumbers.PhoneNumber(country_code=cc, national_number=int(national))
        expected = phonenumbers.is_valid_number(number)
        assert is_valid_national_number(cc, national) == expected, (cc, national)
        valid += expected
    # Both answers are well represented, so the comparison tells something.
    assert len(cases) > 20_000 and 0.2 < valid / len(cases) < 0.8
