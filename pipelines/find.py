"""`omniloyal find`: the unified customers most like a name, for customer service and analysts.

    omniloyal find "Jon Smyth"                      John Smith first, then Jane Smythe, ...
    omniloyal find "Jon Smyth" --phone 07911123456  only customers with that phone, by name
    omniloyal find --email j.smith@example.com      the customers with that e-mail

How it stays under a second on a million customers (docs/benchmarks.md, "Customer lookup"):

1. DuckDB, read-only, reads five columns of core.customers and keeps only candidates. Given
   a phone or an e-mail, those are exact look-ups (each given one must match). Given only a
   name, a blocking filter keeps the customers whose first and last names start with the
   query's initials (in either order, for "Smith John"), or whose first or last name starts
   with the same three letters as the query's (a typo after the first letters still finds
   them): a few per cent of the table at most.
2. rapidfuzz scores the candidates' full names against the query with token_sort_ratio
   (0-100, word order ignored) in one vectorised call, drops those under MIN_SCORE, and keeps
   the best `limit`. With a phone or an e-mail every match is kept, ranked by name.

Names are compared lower-cased and without accents (DuckDB's strip_accents on both sides).
A phone matches when its E.164 form ends with the digits given, leading zeros dropped, so
07911 123456, +44 7911 123456 and 0044 7911 123456 all find +447911123456. Personal data is
masked like everywhere else (assets/shared/privacy.py `mask`) unless asked for.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import duckdb
from rapidfuzz import fuzz, process, utils

from assets.shared.privacy import mask

# A name scoring under this (of 100) is no match: "Jon Smyth" scores 84 against John Smith,
# 80 against Jane Smythe, and under 50 against most other names with the same initials.
MIN_SCORE = 70.0
# Fewer digits than this match too many numbers by their ending to narrow anything.
MIN_PHONE_DIGITS = 7
COLUMNS = ("customer_id", "first_name", "last_name", "email", "phone_e164")


class FindError(ValueError):
    """A query that cannot be run: empty, or a phone without enough digits."""


@dataclass(frozen=True)
class Match:
    customer_id: str
    score: float | None  # None when no name was given: found by phone or e-mail alone
    first_name: str | None
    last_name: str | None
    email: str | None
    phone_e164: str | None


def phone_ending(phone: str) -> str:
    """The digits a stored E.164 phone must end with: the number's digits without leading zeros
    (a national trunk 0, an international 00)."""
    digits = re.sub(r"\D", "", phone).lstrip("0")
    if len(digits) < MIN_PHONE_DIGITS:
        raise FindError(f"--phone needs at least {MIN_PHONE_DIGITS} digits besides leading zeros")
    return digits


def _key(expression: str) -> str:
    """The SQL form names are compared in: lower case, no accents, trimmed."""
    return f"strip_accents(lower(trim({expression})))"


def _name_block(tokens: list[str]) -> tuple[str, list[str]]:
    """The SQL condition keeping the candidates for a name query, and its parameters."""
    first_name, last_name = _key("first_name"), _key("last_name")
    if len(tokens) == 1:
        (token,) = tokens
        return (
            f"(left({first_name}, 2) = ? or left({last_name}, 2) = ?)",
            [token[:2], token[:2]],
        )
    first, last = tokens[0], tokens[-1]
    return (
        f"""(
        (left({first_name}, 1) = ? and left({last_name}, 1) = ?)
        or (left({first_name}, 1) = ? and left({last_name}, 1) = ?)
        or left({first_name}, 3) = ?
        or left({last_name}, 3) = ?
    )""",
        [first[0], last[0], last[0], first[0], first[:3], last[:3]],
    )


def find_customers(
    con: duckdb.DuckDBPyConnection,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    limit: int = 10,
) -> list[Match]:
    """The customers most like the query, best first; FindError when there is nothing to find."""
    name = (name or "").strip()
    email = (email or "").strip()
    if not (name or phone or email):
        raise FindError("give a name, --phone or --email to search for")
    conditions, params = [], []
    if phone is not None:
        conditions.append("ends_with(phone_e164, ?)")
        params.append(phone_ending(phone))
    if email:
        conditions.append("lower(trim(email)) = lower(?)")
        params.append(email)
    query = ""
    if name:
        ((query,),) = con.execute(f"select {_key('?')}", [name]).fetchall()
        # Split on spaces only: O'Neil keeps its apostrophe, as the stored name does; a comma
        # ("Smith, John") is no part of a name.
        tokens = [t.strip(string.punctuation) for t in query.split()]
        tokens = [t for t in tokens if t]
        if len("".join(tokens)) < 2:
            raise FindError("a name to search for needs at least 2 letters")
        if not conditions:  # an identifier narrows more than any name block
            block, block_params = _name_block(tokens)
            conditions.append(block)
            params += block_params
    rows = con.execute(
        f"""
        select {", ".join(COLUMNS)}, {_key("concat_ws(' ', first_name, last_name)")} as name_key
        from core.customers
        where {" and ".join(conditions)}
        order by customer_id
        """,
        params,
    ).fetchall()
    if not name:
        return [Match(row[0], None, *row[1:5]) for row in rows[:limit]]
    ranked = process.extract(
        query,
        [row[5] for row in rows],
        scorer=fuzz.token_sort_ratio,
        processor=utils.default_process,
        limit=limit,
        # With a phone or e-mail the identifier decided who matches; the name only ranks them.
        score_cutoff=None if (phone is not None or email) else MIN_SCORE,
    )
    return [Match(rows[index][0], round(score, 1), *rows[index][1:5]) for _, score, index in ranked]


def describe(matches: list[Match], unmasked: bool = False) -> list[str]:
    """The matches as lines of text, personal data masked unless `unmasked`."""
    shown = (lambda value: "" if value is None else str(value)) if unmasked else _masked
    lines = [
        f"{len(matches)} customer{'s' if len(matches) != 1 else ''} found, best first; "
        + ("personal data shown" if unmasked else "personal data masked (--unmasked shows it)")
    ]
    if not matches:
        return lines
    rows = [
        (
            "-" if m.score is None else f"{m.score:.1f}",
            m.customer_id,
            shown(m.first_name),
            shown(m.last_name),
            shown(m.email),
            shown(m.phone_e164),
        )
        for m in matches
    ]
    headings = ("score", "customer_id", "first name", "last name", "e-mail", "phone")
    widths = [max(len(row[i]) for row in [headings, *rows]) for i in range(len(headings))]
    return lines + [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in [headings, *rows]
    ]


def _masked(value: object) -> str:
    return "" if value is None else mask(value)
