"""Pseudonyms: the salt is made once and kept, and a pseudonym is sha256(salt || normalized value)."""

import hashlib
import stat
from datetime import date

import duckdb
import pytest

from assets.shared.pseudonyms import (
    SALT_ENV,
    SaltError,
    load_salt,
    pseudonym,
    pseudonym_sql,
    salt_path,
    set_salt,
)

SALT = "0123456789abcdef" * 4


@pytest.fixture(autouse=True)
def no_salt_in_environment(monkeypatch):
    monkeypatch.delenv(SALT_ENV, raising=False)


def test_the_salt_is_made_once_owner_only_and_read_back_on_every_run(tmp_path):
    warehouse = tmp_path / "warehouse" / "omniloyal.duckdb"
    first = load_salt(warehouse)
    path = salt_path(warehouse)
    assert path == tmp_path / "warehouse" / ".pseudonym_salt"
    assert len(first) == 64 and int(first, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_salt(warehouse) == first  # stable: read, not made again
    assert load_salt(tmp_path / "elsewhere" / "omniloyal.duckdb") != first  # random per warehouse
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_the_environment_salt_wins_and_must_be_long_enough(tmp_path, monkeypatch):
    monkeypatch.setenv(SALT_ENV, "x" * 40)
    assert load_salt(tmp_path / "omniloyal.duckdb") == "x" * 40
    assert not salt_path(tmp_path / "omniloyal.duckdb").exists()  # no file made
    monkeypatch.setenv(SALT_ENV, "short-secret")
    with pytest.raises(SaltError) as err:
        load_salt(tmp_path / "omniloyal.duckdb")
    assert str(err.value) == (
        "OMNILOYAL_PSEUDONYM_SALT must be at least 32 characters (e.g. `openssl rand -hex 32`), got 12"
    )


def test_a_damaged_salt_file_is_refused_never_replaced(tmp_path):
    warehouse = tmp_path / "omniloyal.duckdb"
    salt_path(warehouse).write_text("not hex at all\n")
    with pytest.raises(SaltError, match=r"\.pseudonym_salt: not a pseudonym salt") as err:
        load_salt(warehouse)
    assert "\n" not in str(err.value) and "not hex at all" not in str(err.value)
    assert salt_path(warehouse).read_text() == "not hex at all\n"


def test_a_pseudonym_is_sha256_of_salt_and_normalized_value_in_sql_and_python():
    expected = hashlib.sha256((SALT + "ann.lee@example.com").encode()).hexdigest()
    assert pseudonym("  Ann.Lee@Example.COM ", SALT) == expected
    assert (
        pseudonym(date(1980, 2, 29), SALT)
        == hashlib.sha256((SALT + "1980-02-29").encode()).hexdigest()
    )
    assert pseudonym(None, SALT) is None and pseudonym("   ", SALT) is None
    con = duckdb.connect()
    set_salt(con, SALT)
    rows = con.execute(
        f"select {pseudonym_sql('v')} from (values ('ANN.LEE@example.com'), (null), ('')) as t(v)"
    ).fetchall()
    assert rows == [(expected,), (None,), (None,)]
    assert pseudonym("ann.lee@example.com", "f" * 64) != expected  # another salt, another pseudonym
