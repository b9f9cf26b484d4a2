"""`omniloyal find`: fuzzy customer lookup, narrowed by phone or e-mail, masked by default."""

import duckdb
import pytest

from pipelines.cli import main
from pipelines.find import MIN_SCORE, FindError, find_customers

CUSTOMERS = [
    # customer_id, first_name, last_name, email, phone_e164
    ("C01", "John", "Smith", "john.smith@gmail.com", "+447911123456"),
    ("C02", "Jane", "Smythe", "jane.smythe@example.com", "+447700900123"),
    ("C03", "Mary", "Jones", "mary.jones@example.com", "+447700900456"),
    ("C04", "José", "Smith", "jose.smith@example.com", None),
    ("C05", "John", "Smith", "jsmith@example.org", "+447700900789"),
    ("C06", "Sam", "Johnson", "sam.johnson@example.com", "+12025550143"),
    ("C07", None, "Smith", None, None),
]


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "omniloyal.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema core")
    con.execute(
        "create table core.customers (customer_id varchar, first_name varchar, last_name varchar, "
        "email varchar, phone_e164 varchar, city varchar)"
    )
    con.executemany(
        "insert into core.customers values (?, ?, ?, ?, ?, 'Leeds')", [list(c) for c in CUSTOMERS]
    )
    con.close()
    return path


def found(path, *args, **kwargs):
    with duckdb.connect(str(path), read_only=True) as con:
        return find_customers(con, *args, **kwargs)


def names(matches):
    return [(m.customer_id, m.first_name, m.last_name) for m in matches]


def test_jon_smyth_finds_john_smith_first_then_jane_smythe(warehouse):
    matches = found(warehouse, "Jon Smyth")
    assert names(matches) == [
        ("C01", "John", "Smith"),  # the two John Smiths score alike: customer_id breaks the tie
        ("C05", "John", "Smith"),
        ("C02", "Jane", "Smythe"),
        ("C04", "José", "Smith"),  # "jose smith": 73.7; Mary Jones, Sam Johnson under MIN_SCORE
    ]
    assert matches[0].score == matches[1].score > matches[2].score > matches[3].score >= MIN_SCORE
    assert matches[0].score == 84.2  # token_sort_ratio("jon smyth", "john smith")


def test_word_order_accents_and_case_do_not_matter(warehouse):
    assert names(found(warehouse, "SMITH, John"))[:2] == [
        ("C01", "John", "Smith"),
        ("C05", "John", "Smith"),
    ]
    assert names(found(warehouse, "jose smith"))[0] == ("C04", "José", "Smith")


def test_a_phone_or_an_email_narrows_to_the_customers_who_have_it(warehouse):
    # Two John Smiths: the phone, in any common format, tells them apart.
    for phone in ("07911 123456", "+44 7911 123456", "0044 7911-123456"):
        assert names(found(warehouse, "Jon Smyth", phone=phone)) == [("C01", "John", "Smith")]
    assert names(found(warehouse, "Jon Smyth", phone="07700 900789")) == [("C05", "John", "Smith")]
    # The e-mail as typed: case and surrounding spaces do not matter. No name: found by it alone.
    by_email = found(warehouse, email=" JSmith@Example.org ")
    assert names(by_email) == [("C05", "John", "Smith")] and by_email[0].score is None
    # The name only ranks what the identifier found, however unlike.
    assert names(found(warehouse, "Mary Jones", phone="+447911123456")) == [
        ("C01", "John", "Smith")
    ]
    # Both given: a customer must have both.
    assert found(warehouse, phone="07911123456", email="jsmith@example.org") == []


def test_limit_and_no_match(warehouse):
    assert len(found(warehouse, "Jon Smyth", limit=1)) == 1
    assert found(warehouse, "Xavier Quinn") == []


@pytest.mark.parametrize(
    "query, message",
    [
        ({"name": "   "}, "give a name, --phone or --email"),
        ({"name": "J"}, "needs at least 2 letters"),
        ({"phone": "0012"}, "--phone needs at least 7 digits"),
    ],
)
def test_a_query_that_cannot_be_run_is_refused(warehouse, query, message):
    with pytest.raises(FindError, match=message):
        found(warehouse, **query)


def run(capsys, *argv):
    code = main(["find", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_masks_personal_data_unless_asked(warehouse, capsys):
    code, out, err = run(capsys, "Jon Smyth", "--warehouse", str(warehouse))
    assert code == 0 and err == ""
    assert out.startswith("4 customers found, best first; personal data masked")
    assert "C01" in out and "84.2" in out
    for _, first, last, email, phone in CUSTOMERS:
        for value in (first, last, email, phone):
            if value and len(value) > 4:
                assert value not in out, value
    assert "@" not in out
    assert "j******************m" in out  # john.smith@gmail.com, masked as the project masks it

    code, out, _ = run(capsys, "Jon Smyth", "--warehouse", str(warehouse), "--unmasked")
    assert code == 0 and "john.smith@gmail.com" in out and "+447911123456" in out
    assert out.index("john.smith@gmail.com") < out.index("jane.smythe@example.com")


def test_bad_input_is_one_line(tmp_path, warehouse, capsys):
    missing = tmp_path / "nowhere.duckdb"
    cases = [
        (["Jon Smyth", "--warehouse", str(missing)], f"{missing} does not exist"),
        (["", "--warehouse", str(warehouse)], "give a name, --phone or --email to search for"),
        (["--phone", "12", "--warehouse", str(missing)], "--phone needs at least 7 digits"),
    ]
    for argv, message in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("omniloyal find: ") and message in err
    not_a_warehouse = tmp_path / "empty.duckdb"
    duckdb.connect(str(not_a_warehouse)).close()
    code, _, err = run(capsys, "Jon", "--warehouse", str(not_a_warehouse))
    assert code == 2 and err.count("\n") == 1 and "customers" in err
    with pytest.raises(SystemExit) as stopped:
        main(["find", "Jon", "--limit", "0"])
    assert stopped.value.code == 2
