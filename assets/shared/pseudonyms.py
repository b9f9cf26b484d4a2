"""Pseudonyms: a personal value replaced by a salted SHA-256, stable across runs.

pseudonym(value) = hex(sha256(salt || normalized value)), normalized = the value as text,
trimmed and lower-cased, an empty text being null. The same e-mail gives the same
pseudonym in every table and every run, so an analyst can still join and count distinct
values without seeing one; without the salt nobody can test a guess (a known e-mail, a
birth date) against a pseudonym.

The salt is a secret kept beside the published warehouse, never in a file given to
analysts: OMNILOYAL_PSEUDONYM_SALT when set, else the file `.pseudonym_salt` next to the
warehouse, created once with 32 random bytes (as 64 hex characters, mode 0600) and read
on every run. docs/privacy.md says how to rotate it and what rotation breaks.

Used by the analytics warehouse (assets/privacy/) and meant for any other place that must
recognise a personal value without keeping it (e.g. a list of erased people's e-mails):
`pseudonym_sql` for a column in set-based SQL, `pseudonym` for one value in Python, both
giving the same text.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import duckdb

SALT_ENV = "OMNILOYAL_PSEUDONYM_SALT"
SALT_FILE_NAME = ".pseudonym_salt"
# The SQL variable the salt is set in on a connection (set_salt), read by pseudonym_sql.
SALT_VARIABLE = "pseudonym_salt"
# A salt shorter than this could be guessed; a generated one is 64 hex characters.
MIN_SALT_CHARS = 32
_HEX_SALT = re.compile(r"[0-9a-f]{64}")


class SaltError(ValueError):
    """The salt cannot be read or made; the message is one line and never holds the salt."""


def salt_path(warehouse_path: str | Path) -> Path:
    """Where the generated salt lives: beside the published warehouse, e.g. data/warehouse/.pseudonym_salt."""
    return Path(warehouse_path).parent / SALT_FILE_NAME


def load_salt(warehouse_path: str | Path) -> str:
    """The salt: OMNILOYAL_PSEUDONYM_SALT if set, else the salt file beside the warehouse,
    created on first use. The same salt on every run, so pseudonyms are stable."""
    given = os.environ.get(SALT_ENV)
    if given is not None:
        if len(given.strip()) < MIN_SALT_CHARS:
            raise SaltError(
                f"{SALT_ENV} must be at least {MIN_SALT_CHARS} characters (e.g. `openssl rand -hex 32`), "
                f"got {len(given.strip())}"
            )
        return given.strip()
    path = salt_path(warehouse_path)
    if not path.exists():
        _create_salt_file(path)
    try:
        salt = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise SaltError(f"{path}: cannot read the pseudonym salt ({type(err).__name__})") from None
    if not _HEX_SALT.fullmatch(salt):
        # Never guess a new one here: a silently changed salt would change every pseudonym.
        raise SaltError(
            f"{path}: not a pseudonym salt (64 hex characters expected); restore it, "
            f"or remove it to start a new salt (docs/privacy.md, 'Rotating the salt')"
        )
    return salt


def _create_salt_file(path: Path) -> None:
    """Write 32 random bytes as hex, readable by the owner only; never replace an existing salt.

    Written under a temporary name and linked into place: a crash leaves no half salt,
    and of two processes creating it at once the second reads the first one's salt.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (secrets.token_hex(32) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(partial, path)
    except FileExistsError:
        pass  # another process made it first: its salt is the one
    finally:
        partial.unlink(missing_ok=True)


def set_salt(con: duckdb.DuckDBPyConnection, salt: str) -> None:
    """Make the salt available to pseudonym_sql on this connection. A variable lives in the
    connection only: it is never written to any database file."""
    con.execute(f"set variable {SALT_VARIABLE} = ?", [salt])


def normalized_sql(expression: str) -> str:
    """The value as pseudonyms see it: text, trimmed, lower-case; empty text is null."""
    return f"nullif(lower(trim(cast({expression} as varchar))), '')"


def pseudonym_sql(expression: str) -> str:
    """SQL for the pseudonym of a column or expression (null stays null), on a connection
    where set_salt was called: hex(sha256(salt || normalized value))."""
    return f"sha256(getvariable('{SALT_VARIABLE}') || {normalized_sql(expression)})"


def pseudonym(value: object, salt: str) -> str | None:
    """The pseudonym of one value, e.g. of an e-mail in an erasure request: computed by
    pseudonym_sql itself, so text, dates and Unicode case are normalized exactly as in the
    warehouse (DuckDB's lower() and Python's differ on a few letters)."""
    con = duckdb.connect()
    try:
        set_salt(con, salt)
        return con.execute(f"select {pseudonym_sql('?::varchar')}", [_as_text(value)]).fetchall()[
            0
        ][0]
    finally:
        con.close()


def _as_text(value: object) -> str | None:
    return None if value is None else str(value)
