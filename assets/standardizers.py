"""Standardizing customer fields: display forms for people, matching forms for the model.

A display form is what a person should see: "o'brien" -> "O'Brien", "07911 123456"
-> "+447911123456". A matching form (a "key") throws away what does not tell people
apart: case, accents, punctuation ("José" -> "jose"), nicknames ("Bob" -> "robert"),
e-mail provider aliases ("J.Smith+news@gmail.com" -> "jsmith@gmail.com").

Every function takes any text and returns None or a string; none raises on any input.
`register_udfs` makes them DuckDB functions of the same names, so the staging SQL calls
them; each call computes each distinct value of a batch once, since names, phones and
postcodes repeat a lot.

Libraries: phonenumbers (phones), nameparser ("Last, First" and titles),
email-validator (e-mail syntax), anyascii (accent folding). Nicknames come from
assets/reference/nicknames.csv, a curated table: the `nicknames` package maps names
in both directions with several candidates ("bill" -> robert or william, "michael" ->
miguel), which gives no single canonical name to match on.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import duckdb
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from anyascii import anyascii
from email_validator import EmailNotValidError, validate_email
from nameparser import HumanName

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
MAX_INPUT = 500  # longer "names" are garbage; cut before parsing so nothing gets slow

# Street-type words folded to one abbreviation, so "High Street" = "High St".
STREET_TYPES = {
    "street": "st", "st": "st",
    "road": "rd", "rd": "rd",
    "avenue": "ave", "ave": "ave", "av": "ave",
    "lane": "ln", "ln": "ln",
    "drive": "dr", "dr": "dr",
    "close": "cl", "cl": "cl",
    "crescent": "cres", "cres": "cres",
    "place": "pl", "pl": "pl",
    "square": "sq", "sq": "sq",
    "court": "ct", "ct": "ct",
    "terrace": "ter", "terr": "ter", "ter": "ter",
    "gardens": "gdns", "gdns": "gdns",
    "grove": "gr", "gr": "gr",
}

# Providers that ignore parts of the local part: gmail ignores dots and "+tag";
# these others deliver "name+tag" to "name". Yahoo's "-" disposable addresses are
# separate mailboxes and are left alone.
GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
PLUS_TAG_DOMAINS = GMAIL_DOMAINS | {
    "outlook.com", "hotmail.com", "hotmail.co.uk", "live.com", "live.co.uk", "msn.com",
    "icloud.com", "me.com", "mac.com", "yahoo.com", "yahoo.co.uk", "fastmail.com", "protonmail.com", "proton.me",
}

# Plain ASCII addresses that email-validator accepts whatever their provider; anything
# else (unicode, quoted parts, odd domains) goes through email-validator itself.
SIMPLE_EMAIL = re.compile(
    r"[a-z0-9_%+\-]+(\.[a-z0-9_%+\-]+)*@([a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}"
)
SPECIAL_USE_TLDS = {"arpa", "invalid", "local", "localhost", "onion", "test"}
TITLES = {"mr", "mrs", "ms", "miss", "dr", "prof", "sir", "dame", "rev", "mx", "lord", "lady"}
PHONE_FORMATTING = re.compile(r"[\s().\-/]")
PHONE_COMPACT = re.compile(r"\+?\d{6,15}")
UK_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")
NAME_PART = re.compile(r"([\s\-'’]+)")
NOT_LETTER = re.compile(r"[^a-z]")
NOT_WORD = re.compile(r"[^a-z0-9]+")


def _clean(text: str | None) -> str | None:
    """NFKC, control characters removed, whitespace collapsed; None when nothing is left."""
    if text is None:
        return None
    text = unicodedata.normalize("NFKC", str(text)[:MAX_INPUT])
    if not text.isprintable():  # rare; the per-character scan is slow
        text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = " ".join(text.split())
    return text or None


@lru_cache(maxsize=1)
def nickname_table() -> dict[str, str]:
    with (REFERENCE_DIR / "nicknames.csv").open(encoding="utf-8") as handle:
        return {row["nickname"]: row["given_name"] for row in csv.DictReader(handle)}


# ---------------------------------------------------------------- names


def standardize_name(text: str | None) -> str | None:
    """Display form: 'JOHN  SMITH' -> 'John Smith', "o'brien" -> "O'Brien", 'josé' -> 'José'.

    Each part between spaces, hyphens and apostrophes gets one capital, so 'McDONALD'
    becomes 'Mcdonald': wrong for a few names, but the same for every source.
    """
    text = _clean(text)
    if text is None:
        return None
    parts = NAME_PART.split(text)
    return "".join(part if NAME_PART.fullmatch(part) else part[:1].upper() + part[1:].lower() for part in parts)


def name_match_key(text: str | None) -> str | None:
    """Matching form: accents folded, lower-case, letters only ("O'Brien" -> 'obrien')."""
    text = _clean(text)
    if text is None:
        return None
    key = NOT_LETTER.sub("", anyascii(text).lower())
    return key or None


def split_full_name(text: str | None) -> tuple[str | None, str | None]:
    """(first, last) display forms of 'Smith, John', 'John Smith' or 'Mr John Paul Smith'."""
    text = _clean(text)
    if text is None:
        return None, None
    # The two shapes most records have are split directly; nameparser, 50 times slower,
    # handles the rest (titles, suffixes, middle names, particles like "de la").
    head, comma, tail = text.partition(",")
    words = text.split()
    if comma and "," not in tail and len(head.split()) == 1 and len(tail.split()) == 1:
        return standardize_name(tail), standardize_name(head)
    if not comma and len(words) == 2 and words[0].lower().rstrip(".") not in TITLES:
        return standardize_name(words[0]), standardize_name(words[1])
    try:
        name = HumanName(text)
        first, last = name.first, name.last
    except Exception:  # nameparser on pathological input; fall back to a plain split
        first, last = "", ""
    if not first and not last:
        if "," in text:
            last, _, first = text.partition(",")
        else:
            first, _, last = text.partition(" ")
            last = last.rpartition(" ")[2]
    return standardize_name(first), standardize_name(last)


def full_name_first(text: str | None) -> str | None:
    return split_full_name(text)[0]


def full_name_last(text: str | None) -> str | None:
    return split_full_name(text)[1]


def canonical_first_name(text: str | None) -> str | None:
    """Matching form of the given name behind a nickname: 'Bob' -> 'robert', 'Robert' -> 'robert'."""
    key = name_match_key(text)
    if key is None:
        return None
    return nickname_table().get(key, key)


# ---------------------------------------------------------------- e-mail


def standardize_email(text: str | None) -> str | None:
    """Trimmed, lower-cased, syntax-checked: '  John.Smith@GMail.com ' -> 'john.smith@gmail.com'."""
    text = _clean(text)
    if text is None or " " in text:
        return None
    text = text.lower()
    if SIMPLE_EMAIL.fullmatch(text) and text.rpartition(".")[2] not in SPECIAL_USE_TLDS:
        return text
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    except Exception:  # email-validator on pathological unicode
        return None
    return checked.normalized.lower()


def email_match_key(text: str | None) -> str | None:
    """The mailbox behind an address: gmail dots and '+tags' dropped, googlemail = gmail."""
    email = standardize_email(text)
    if email is None:
        return None
    local, _, domain = email.rpartition("@")
    if domain in PLUS_TAG_DOMAINS:
        local = local.split("+", 1)[0]
    if domain in GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}" if local else None


# ---------------------------------------------------------------- phones, addresses


def standardize_phone(text: str | None, region: str = "GB") -> str | None:
    """E.164, or None when not a valid number: '07911 123456' -> '+447911123456'.

    A number written with its country code but without '+' ('447911123456') is read
    as international when it is not valid as a national number.
    """
    text = _clean(text)
    if text is None:
        return None
    # "07911 123456", "(07911) 123-456" and "07911.123.456" are one number: parse it once.
    compact = PHONE_FORMATTING.sub("", text)
    return _e164(compact if PHONE_COMPACT.fullmatch(compact) else text, region)


@lru_cache(maxsize=1 << 20)
def _e164(text: str, region: str) -> str | None:
    fast = _e164_without_parsing(text, region)
    if fast is not None:
        return fast
    candidates = [text]
    digits = re.sub(r"\D", "", text)
    if digits and not text.lstrip().startswith(("+", "0")):
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


@lru_cache(maxsize=64)
def _dialling_codes(region: str) -> tuple[str, str] | None:
    """(country code, national trunk prefix) of a region, e.g. ('44', '0') for GB."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or not metadata.national_prefix:
        return None
    return str(metadata.country_code), metadata.national_prefix


def _e164_without_parsing(compact: str, region: str) -> str | None:
    """The common shapes (07911123456, +447911123456, 00447911123456) checked without
    phonenumbers' parser, which is most of the cost; None means "ask the parser"."""
    codes = _dialling_codes(region)
    if codes is None or not compact.lstrip("+").isdigit():
        return None
    country, trunk = codes
    for prefix in ("+" + country, "00" + country, trunk):
        if compact.startswith(prefix):
            national = compact[len(prefix) :]
            break
    else:
        return None
    if not national or national[0] == "0":  # leading zeros need the parser's rules
        return None
    number = phonenumbers.PhoneNumber(country_code=int(country), national_number=int(national))
    return f"+{country}{national}" if phonenumbers.is_valid_number(number) else None


def standardize_postcode(text: str | None, country: str = "GB") -> str | None:
    """Upper-case; UK postcodes with one space before the inward code: 'sw1a1aa' -> 'SW1A 1AA'."""
    text = _clean(text)
    if text is None:
        return None
    compact = "".join(text.upper().split())
    if country == "GB":
        match = UK_POSTCODE.match(compact)
        if match:
            return f"{match.group(1)} {match.group(2)}"
    return text.upper()


def standardize_street(text: str | None) -> str | None:
    """Matching form of a street line: '12 High Street' and '12 high st.' -> '12 high st'."""
    text = _clean(text)
    if text is None:
        return None
    words = NOT_WORD.sub(" ", anyascii(text).lower()).split()
    folded = " ".join(STREET_TYPES.get(word, word) for word in words)
    return folded or None


# ---------------------------------------------------------------- DuckDB functions


def _per_distinct_value(function: Callable[[str | None], str | None]) -> Callable[[pa.Array], pa.Array]:
    """An Arrow batch function computing `function` once per distinct value.

    Values repeat across the batches DuckDB hands over more than within one, so results
    are remembered across batches, up to about a million distinct values.
    """
    remembered = lru_cache(maxsize=1 << 20)(function)

    def apply(values: pa.Array) -> pa.Array:
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        distinct = pc.unique(values)
        results = pa.array([remembered(v) for v in distinct.to_pylist()], pa.string())
        return pc.take(results, pc.index_in(values, value_set=distinct))

    return apply


def udf_functions(phone_region: str = "GB") -> dict[str, Callable[[str | None], str | None]]:
    """The functions the staging SQL can call, by name."""
    return {
        "standardize_name": standardize_name,
        "name_match_key": name_match_key,
        "full_name_first": full_name_first,
        "full_name_last": full_name_last,
        "canonical_first_name": canonical_first_name,
        "standardize_email": standardize_email,
        "email_match_key": email_match_key,
        "standardize_phone": lambda text: standardize_phone(text, phone_region),
        "standardize_postcode": lambda text: standardize_postcode(text, phone_region),
        "standardize_street": standardize_street,
    }


def register_udfs(con: duckdb.DuckDBPyConnection, phone_region: str = "GB") -> None:
    """Register every standardizer as a DuckDB function (VARCHAR -> VARCHAR); safe to repeat."""
    for name, function in udf_functions(phone_region).items():
        try:
            con.remove_function(name)
        except duckdb.InvalidInputException:
            pass  # not registered yet
        con.create_function(
            name,
            _per_distinct_value(function),
            [duckdb.sqltype("VARCHAR")],
            duckdb.sqltype("VARCHAR"),
            type="arrow",
            null_handling="special",
            side_effects=False,
        )
