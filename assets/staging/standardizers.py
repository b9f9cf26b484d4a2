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
assets/staging/reference/nicknames.csv, a curated table: the `nicknames` package maps names
in both directions with several candidates ("bill" -> robert or william, "michael" ->
miguel), which gives no single canonical name to match on.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import duckdb
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from anyascii import anyascii
from email_validator import EmailNotValidError, validate_email
from nameparser import HumanName

from assets.ingest.contract import source_files
from assets.shared.warehouse import set_variable, table_exists

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
MAX_INPUT = 500  # longer "names" are garbage; cut before parsing so nothing gets slow

# Street-type words folded to one abbreviation, so "High Street" = "High St".
STREET_TYPES = {
    "street": "st",
    "st": "st",
    "road": "rd",
    "rd": "rd",
    "avenue": "ave",
    "ave": "ave",
    "av": "ave",
    "lane": "ln",
    "ln": "ln",
    "drive": "dr",
    "dr": "dr",
    "close": "cl",
    "cl": "cl",
    "crescent": "cres",
    "cres": "cres",
    "place": "pl",
    "pl": "pl",
    "square": "sq",
    "sq": "sq",
    "court": "ct",
    "ct": "ct",
    "terrace": "ter",
    "terr": "ter",
    "ter": "ter",
    "gardens": "gdns",
    "gdns": "gdns",
    "grove": "gr",
    "gr": "gr",
}

# Providers that ignore parts of the local part: gmail ignores dots and "+tag";
# these others deliver "name+tag" to "name". Yahoo's "-" disposable addresses are
# separate mailboxes and are left alone.
GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}
PLUS_TAG_DOMAINS = GMAIL_DOMAINS | {
    "outlook.com",
    "hotmail.com",
    "hotmail.co.uk",
    "live.com",
    "live.co.uk",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "yahoo.com",
    "yahoo.co.uk",
    "fastmail.com",
    "protonmail.com",
    "proton.me",
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
IS_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE
# Country values that are not ISO 3166 codes but mean one ("UK" is GB's old name).
REGION_ALIASES = {"UK": "GB"}
# No configured region and no country code or country in the data to infer one from.
FALLBACK_PHONE_REGION = "GB"
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
    return "".join(
        part if NAME_PART.fullmatch(part) else part[:1].upper() + part[1:].lower() for part in parts
    )


def name_match_key(text: str | None) -> str | None:
    """Matching form: accents folded, lower-case, letters only ("O'Brien" -> 'obrien')."""
    text = _clean(text)
    if text is None:
        return None
    key = NOT_LETTER.sub("", anyascii(text).lower())
    return key or None


# full_name_first and full_name_last split the same names: DuckDB computes both on each chunk
# of rows, one after the other, so a cache the size of a few chunks splits each name once.
@lru_cache(maxsize=1 << 16)
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

# Results remembered per function, across DuckDB's batches and steps. A million people have
# about 1.5M distinct phones and e-mails: a cache smaller than that is swept end to end by
# every pass over them (least recently used goes first) and remembers nothing; 4M entries
# of a few hundred bytes stay under a gigabyte when full.
CACHED_VALUES = 1 << 22


def standardize_phone(text: str | None, region: str = "GB") -> str | None:
    """E.164 of a valid or a possible number, else None: '07911 123456' -> '+447911123456'.

    A number without a country code is read in `region`. A valid number (an allocated
    range of its country) is the strong key; a possible one (right length, a range
    libphonenumber does not know, e.g. '07700 900123') is kept as a weaker key, and
    `is_valid_phone` tells the two apart. A number written with its country code but
    without '+' ('447911123456') is read as international when it is not valid as a
    national number.
    """
    reading = read_phone(text, region)
    return reading[0] if reading else None


def is_valid_phone(text: str | None, region: str = "GB") -> bool | None:
    """True for a valid number, False for a possible-only one, None when not read as a number."""
    reading = read_phone(text, region)
    return reading[1] if reading else None


def read_phone(text: str | None, region: str = "GB") -> tuple[str, bool] | None:
    """(E.164, is valid) of a phone number read in `region`, or None when it is not one."""
    text = _clean(text)
    if text is None:
        return None
    # "07911 123456", "(07911) 123-456" and "07911.123.456" are one number: parse it once.
    compact = PHONE_FORMATTING.sub("", text)
    return _read_phone(compact if PHONE_COMPACT.fullmatch(compact) else text, region)


def region_for_country(country: str | None, default: str) -> str:
    """The region a record's phone is read in: its own country when a known ISO-2 code, else `default`."""
    if country is None:
        return default
    code = country.strip().upper()
    code = REGION_ALIASES.get(code, code)
    return code if code in phonenumbers.SUPPORTED_REGIONS else default


@lru_cache(maxsize=CACHED_VALUES)
def _read_phone(text: str, region: str) -> tuple[str, bool] | None:
    fast = _e164_without_parsing(text, region)
    if fast is not None:
        return fast, True
    candidates = [text]
    digits = re.sub(r"\D", "", text)
    if digits and not text.lstrip().startswith(("+", "0")):
        candidates.append("+" + digits)
    elif digits.startswith("00") and not text.lstrip().startswith("+"):
        candidates.append(
            "+" + digits[2:]
        )  # 00 before the country code, where the region dials 011
    possible = None
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True
        # Possible in full, not only as a local number without its area code.
        if possible is None and phonenumbers.is_possible_number_with_reason(number) == IS_POSSIBLE:
            possible = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return (possible, False) if possible else None


@lru_cache(maxsize=512)
def _dialling_codes(region: str) -> tuple[str, str | None, re.Pattern | None] | None:
    """(country code, national trunk prefix, the parser's trunk pattern) of a region whose
    numbers can be read without the parser: ('44', '0', '0|180020') for GB, ('1', '1', '1') for US.

    Regions whose trunk handling rewrites the number (Argentina's 15, Brazil's carrier
    codes) are None: the parser reads them.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code is None or metadata.national_prefix_transform_rule:
        return None
    pattern = metadata.national_prefix_for_parsing or metadata.national_prefix
    return (
        str(metadata.country_code),
        metadata.national_prefix or None,
        re.compile(pattern) if pattern else None,
    )


def _e164_without_parsing(compact: str, region: str) -> str | None:
    """The common shapes (07911123456, 7911123456, +447911123456, 00447911123456; in the US
    9166581680 and 19166581680) checked without phonenumbers' parser, which is most of the
    cost. Only a valid number is answered; None means "ask the parser"."""
    codes = _dialling_codes(region)
    if codes is None or not compact.lstrip("+").isdigit():
        return None
    country, trunk, trunk_pattern = codes
    for prefix in ("+" + country, "00" + country, trunk):
        if prefix and compact.startswith(prefix):
            return _valid_e164(country, compact[len(prefix) :])
    if compact.startswith(("+", "0")) or (trunk_pattern and trunk_pattern.match(compact)):
        return None
    # Written without the trunk prefix (as US numbers are), or with the country code but no '+'.
    found = _valid_e164(country, compact)
    if found is None and compact.startswith(country):
        found = _valid_e164(country, compact[len(country) :])
    return found


def _valid_e164(country: str, national: str) -> str | None:
    if not national or national[0] == "0":  # leading zeros need the parser's rules
        return None
    return f"+{country}{national}" if is_valid_national_number(int(country), national) else None


# phonenumbers.is_valid_number, answered the same from the same metadata about ten times
# faster: a million people have 1.5M distinct phones, and it was most of the staging
# models' Python time. The library finds the number's region by checking its type in each
# region of the calling code, then checks it again in that region, with the type patterns
# compiled and matched twice on each; validity only asks whether some type matches.
# tests/test_standardizers.py compares the two on every region's example numbers and
# their neighbours.
NUMBER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)


@dataclass(frozen=True)
class _Desc:
    lengths: frozenset[int]
    pattern: re.Pattern

    def matches(self, national: str) -> bool:
        # As phonenumbers' _is_number_matching_desc: no lengths listed means any length.
        if self.lengths and len(national) not in self.lengths:
            return False
        return self.pattern.fullmatch(national) is not None


def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None  # matches nothing
    return _Desc(frozenset(desc.possible_length), re.compile(desc.national_number_pattern))


@cache
def _region_descs(region: str) -> tuple[_Desc | None, tuple[_Desc, ...], re.Pattern | None] | None:
    """(general pattern, the type patterns of a valid number, leading digits) of a region."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        return None
    types = [_desc(getattr(metadata, name)) for name in NUMBER_TYPES]
    # The library only looks at the mobile pattern when it differs from the fixed-line one.
    if not metadata.same_mobile_and_fixed_line_pattern:
        types.insert(0, _desc(metadata.mobile))  # the commonest, so first
    leading = re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
    return _desc(metadata.general_desc), tuple(t for t in types if t), leading


def _has_valid_type(national: str, region: str) -> bool:
    descs = _region_descs(region)
    if descs is None:
        return False
    general, types, _ = descs
    if general is None or not general.matches(national):
        return False
    return any(t.matches(national) for t in types)


def is_valid_national_number(country_code: int, national: str) -> bool:
    """phonenumbers.is_valid_number of +<country_code><national> (national: digits, no
    leading zero), from the same metadata."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if not regions:
        return False
    if regions[0] == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:  # rare: +800 and the like
        number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
        return phonenumbers.is_valid_number(number)
    if len(regions) == 1:
        return _has_valid_type(national, regions[0])
    for region in regions:
        descs = _region_descs(region)
        if descs is None:
            continue
        leading = descs[2]
        if leading is not None:
            if leading.match(national):
                return _has_valid_type(national, region)
        elif _has_valid_type(national, region):
            return True
    return False


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


def _per_distinct_value(
    function: Callable[[str | None], str | None],
) -> Callable[[pa.Array], pa.Array]:
    """An Arrow batch function computing `function` once per distinct value.

    Values repeat across the batches DuckDB hands over more than within one, so results
    are remembered across batches, up to CACHED_VALUES distinct values.
    """
    remembered = lru_cache(maxsize=CACHED_VALUES)(function)

    def apply(values: pa.Array) -> pa.Array:
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        distinct = pc.unique(values)
        results = pa.array([remembered(v) for v in distinct.to_pylist()], pa.string())
        return pc.take(results, pc.index_in(values, value_set=distinct))

    return apply


def _per_distinct_phone(
    function: Callable[[str | None, str], object], result_type: pa.DataType
) -> Callable[[pa.Array, pa.Array], pa.Array]:
    """An Arrow batch function of (phone, country) computing `function` once per distinct pair.

    Most calls pass no country (every row null): then only the distinct phones count.
    Otherwise each row is keyed by its country, trimmed and upper-cased (anything but two
    letters becomes '--', which reads in the default region), then its phone. `function`
    remembers its own results (phone_udf_functions): both phone functions share them.
    """

    def apply(values: pa.Array, countries: pa.Array) -> pa.Array:
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        countries = (
            countries.combine_chunks() if isinstance(countries, pa.ChunkedArray) else countries
        )
        if countries.null_count == len(countries):
            distinct = pc.unique(values)
            results = pa.array([function(v, "--") for v in distinct.to_pylist()], result_type)
            return pc.take(results, pc.index_in(values, value_set=distinct))
        codes = pc.utf8_upper(pc.utf8_trim_whitespace(countries))
        codes = pc.fill_null(pc.if_else(pc.equal(pc.utf8_length(codes), 2), codes, "--"), "--")
        keys = pc.binary_join_element_wise(codes, values, "")  # null when the phone is null
        distinct = pc.unique(keys)
        results = pa.array(
            [None if k is None else function(k[2:], k[:2]) for k in distinct.to_pylist()],
            result_type,
        )
        return pc.take(results, pc.index_in(keys, value_set=distinct))

    return apply


def udf_functions(phone_region: str = "GB") -> dict[str, Callable[[str | None], str | None]]:
    """The one-argument text functions the staging SQL can call, by name.

    standardize_phone and is_valid_phone also take the record's country as a second
    argument: `standardize_phone(phone, country)` reads the phone in that country when it
    is a known ISO-2 code, in `phone_region` otherwise (see phone_udf_functions).
    """
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


def phone_udf_functions(
    phone_region: str = "GB",
) -> dict[str, tuple[Callable[[str | None, str], object], str]]:
    """The (phone, country) functions behind the SQL macros of the same name, with their result type.

    Both read each distinct (phone, country) once between them: a model calls both on the
    same phones, and reading one (cleaning, compacting, the region) was most of their cost
    once the number itself is remembered.
    """

    @lru_cache(maxsize=CACHED_VALUES)
    def reading(text: str | None, country: str) -> tuple[str, bool] | None:
        return read_phone(text, region_for_country(country, phone_region))

    def e164(text: str | None, country: str) -> str | None:
        found = reading(text, country)
        return found[0] if found else None

    def is_valid(text: str | None, country: str) -> bool | None:
        found = reading(text, country)
        return found[1] if found else None

    return {"standardize_phone": (e164, "VARCHAR"), "is_valid_phone": (is_valid, "BOOLEAN")}


@dataclass(frozen=True)
class PhoneRegion:
    """The region phones without a country code are read in, and where it came from."""

    region: str
    inferred_from: str  # 'the phone_region setting', or what the inference counted


def register_udfs(con: duckdb.DuckDBPyConnection, phone_region: str = "") -> PhoneRegion:
    """Register every standardizer as a DuckDB function; safe to repeat.

    `phone_region` is the region of phones without a country code (ISO-2, e.g. GB); empty
    means infer it from the raw tables on `con` (infer_phone_region). It is also set as
    the SQL variables `phone_region` and `phone_region_inferred_from`.
    """
    if phone_region.strip():
        region = phone_region.strip().upper()
        region = REGION_ALIASES.get(region, region)
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"phone_region must be a two-letter region code such as GB or US, got {phone_region!r}"
            )
        chosen = PhoneRegion(region, "the phone_region setting")
    else:
        chosen = infer_phone_region(con)
    set_variable(con, "phone_region", chosen.region)
    set_variable(con, "phone_region_inferred_from", chosen.inferred_from)

    functions = {
        name: (_per_distinct_value(f), ["VARCHAR"], "VARCHAR")
        for name, f in udf_functions(chosen.region).items()
    }
    for name, (function, result_type) in phone_udf_functions(chosen.region).items():
        functions[name] = (
            _per_distinct_phone(function, pa.bool_() if result_type == "BOOLEAN" else pa.string()),
            ["VARCHAR", "VARCHAR"],
            result_type,
        )
    # DuckDB has no overloading of Python functions: the phone functions are registered
    # under `<name>_in_region` and called through macros taking one or two arguments.
    for name in PHONE_MACROS:
        functions[f"{name}_in_region"] = functions.pop(name)
    for name, (function, parameters, result_type) in functions.items():
        try:
            con.remove_function(name)
        except duckdb.InvalidInputException:
            pass  # not registered yet
        con.create_function(
            name,
            function,
            [duckdb.sqltype(t) for t in parameters],
            duckdb.sqltype(result_type),
            type="arrow",
            null_handling="special",
            side_effects=False,
        )
    for name in PHONE_MACROS:
        con.execute(
            f"create or replace temp macro {name}(phone) as {name}_in_region(phone, cast(null as varchar)), "
            f"(phone, country) as {name}_in_region(phone, country)"
        )
    return chosen


PHONE_MACROS = ("standardize_phone", "is_valid_phone")


def infer_phone_region(con: duckdb.DuckDBPyConnection) -> PhoneRegion:
    """The most common country among phones written with a country code (+1, +44, 0044) in
    the raw tables and the web customers' countries; GB on a tie or when there is none.

    One set-based query: it counts the first digits after '+' or '00' and the country
    values, so its result is a few rows whatever the size of the data.
    """
    parts = []
    for spec in source_files():
        table = f"raw.{spec.table}"
        if not table_exists(con, table):
            continue
        if "phone" in spec.column_names:
            compact = r"regexp_replace(phone, '[\s().\-/]', '', 'g')"
            parts.append(
                f"select regexp_extract({compact}, '^(?:\+|00)(\d{{1,3}})', 1) as code, null as country "
                f"from {table} where phone like '+%' or phone like '00%'"
            )
        if "country" in spec.column_names:
            parts.append(f"select null as code, country from {table} where country is not null")
    counted = (
        con.execute(
            f"select code, country, count(*) from ({' union all '.join(parts)}) group by all"
        ).fetchall()
        if parts
        else []
    )
    by_code: dict[str, int] = {}
    by_country: dict[str, int] = {}
    numbers = countries = 0
    for code, country, n in counted:
        if country is not None:
            region = region_for_country(country, "")
            countries += n
            bucket = by_country
        else:
            region = _region_of_calling_code(code or "")
            numbers += n
            bucket = by_code
        if region:
            bucket[region] = bucket.get(region, 0) + n
    totals = {
        r: by_code.get(r, 0) + by_country.get(r, 0) for r in by_code.keys() | by_country.keys()
    }
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    seen = f"{numbers:,} phone numbers with a country code and {countries:,} country values"
    shown = ", ".join(f"{r} {n:,}" for r, n in ranked[:5])
    if not ranked:
        return PhoneRegion(
            FALLBACK_PHONE_REGION,
            f"no country in the data ({seen}): fallback {FALLBACK_PHONE_REGION}",
        )
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return PhoneRegion(
            FALLBACK_PHONE_REGION, f"a tie ({shown}) in {seen}: fallback {FALLBACK_PHONE_REGION}"
        )
    return PhoneRegion(ranked[0][0], f"most common in {seen} ({shown})")


def _region_of_calling_code(digits: str) -> str | None:
    """The main region of the calling code the digits start with ('447' -> GB, '191' -> US)."""
    for length in (1, 2, 3):  # calling codes are prefix-free
        if len(digits) >= length:
            region = phonenumbers.region_code_for_country_code(int(digits[:length]))
            if region != phonenumbers.UNKNOWN_REGION:
                return (
                    region if region in phonenumbers.SUPPORTED_REGIONS else None
                )  # '001': non-geographic
    return None
