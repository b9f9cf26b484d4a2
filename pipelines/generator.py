"""A realistic, messy, reproducible inbox for omniloyal: what four real source systems export.

People are drawn first (names with Zipf-like frequencies, birth dates, addresses,
phones, e-mails, households), then each person gets records in 1-4 systems, and
every record is written the way that system writes it, with that system's mess:

- names: typos (~3%), nicknames instead of the given name (~8% where one exists),
  UPPER CASE at the store desk (~10%), "Last, First" at the call center (~30%),
  maiden names (~2% of married women in one system), accents (José, Zoë, Müller);
- e-mails: stray whitespace and capitals, gmail dots and +tags in another system,
  a couple sharing a family address (~1%);
- phones: "07911 123456", "+44 7911 123456", "447911123456", "(07911) 123-456", ...;
  households share a landline-style number;
- missing fields at rates that differ by source; moved addresses (~5%);
- people with two web accounts (~3%) or two store cards (~3%), households
  (~15% of people), twins (a few per thousand);
- a small share of broken rows (`bad_row_rate`): unparseable dates, negative or
  non-numeric amounts, unknown enum values, missing keys, malformed JSON, wrong
  field counts.

Activity (orders, app events, till transactions, call-center contacts) follows a
per-person activity level, so many people buy once and a few buy a lot.
The same arguments always write byte-identical files.

A profile sets the country: "uk" (the default) as above; "us" draws US names, street
addresses, cities and ZIP codes (ZIP+4 in some records), valid US phone numbers written
"(916) 658-1680", "916.658.1680", "1-916-658-1680", "+1 916 658 1680", ..., orders in
USD, and a call center that keeps no e-mail addresses. The mess is the same in both;
date formats are the contract's, whatever the profile.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from assets.ingest.contract import source_file

REFERENCE = yaml.safe_load(
    (Path(__file__).resolve().parent / "reference" / "people.yaml").read_text(encoding="utf-8")
)
NICKNAME_TABLE = (
    Path(__file__).resolve().parents[1] / "assets" / "staging" / "reference" / "nicknames.csv"
)
US_REFERENCE = {
    **REFERENCE,
    **yaml.safe_load(
        (Path(__file__).resolve().parent / "reference" / "us.yaml").read_text(encoding="utf-8")
    ),
}
HISTORY_DAYS = 730  # activity lies in the two years before the last delivery

SHARE_WITH = {"web": 0.60, "app": 0.45, "store": 0.55, "callcenter": 0.25}
SECOND_WEB_ACCOUNT = 0.03
SECOND_STORE_CARD = 0.03
HOUSEHOLD_SHARE = 0.15
TWIN_SHARE = 0.004
TYPO_RATE = {"web": 0.03, "app": 0.05, "store": 0.04, "callcenter": 0.05}
NICKNAME_RATE = 0.08
UPPER_CASE_RATE = {"web": 0.02, "app": 0.02, "store": 0.10, "callcenter": 0.03}
LAST_FIRST_RATE = 0.30
MOVED_RATE = 0.05
MAIDEN_NAME_RATE = 0.02
FAMILY_EMAIL_RATE = 0.01
MISSING = {  # share of records of a source without the field
    # Web shops require an e-mail and ask for a phone at checkout; apps log in by e-mail
    # and ask for a phone for two-factor login; stores take a phone at the desk; call
    # centers log the caller's number and capture an e-mail for follow-ups less often.
    "web": {"phone": 0.25, "birth": 0.35, "street": 0.05},
    "app": {"phone": 0.35, "birth": 0.30, "email": 0.03},
    "store": {"phone": 0.10, "birth": 0.20, "postcode": 0.05},
    "callcenter": {"phone": 0.05, "email": 0.45},
}


@dataclass(frozen=True)
class Profile:
    """What differs between countries; the mess and the export formats do not."""

    name: str
    reference: dict  # names, streets, towns and e-mail providers
    country: str  # the web shop's country column
    currency: str  # of web orders
    callcenter_emails: bool  # whether the call-center CRM keeps an e-mail address


PROFILES = {
    "uk": Profile("uk", REFERENCE, country="GB", currency="GBP", callcenter_emails=True),
    # US call centers identify callers by phone and account; the column stays, empty.
    "us": Profile("us", US_REFERENCE, country="US", currency="USD", callcenter_emails=False),
}
UK = PROFILES["uk"]


@dataclass(frozen=True)
class Calendar:
    """The delivery dates: `days` daily files ending on `end_date`."""

    end_date: date
    days: int

    @property
    def first_delivery(self) -> date:
        return self.end_date - timedelta(days=self.days - 1)

    @property
    def history_start(self) -> date:
        return self.end_date - timedelta(days=HISTORY_DAYS)

    def delivery_of(self, moments: pd.Series) -> np.ndarray:
        """Delivery index (0 = first file) for timestamps: their day, or the first file for history."""
        first = pd.Timestamp(self.first_delivery)
        index = (moments.dt.normalize() - first).dt.days.to_numpy()
        return np.clip(index, 0, self.days - 1)


# ---------------------------------------------------------------- people


def _zipf_choice(
    rng: np.random.Generator, options: list[str], size: int, exponent: float = 0.5
) -> np.ndarray:
    weights = 1.0 / np.arange(1, len(options) + 1) ** exponent
    return rng.choice(np.array(options, dtype=object), size=size, p=weights / weights.sum())


def _random_dates(rng: np.random.Generator, start: date, end: date, size: int) -> pd.Series:
    span = (end - start).days
    offsets = rng.integers(0, max(span, 1), size=size)
    return pd.Series(pd.Timestamp(start) + pd.to_timedelta(offsets, unit="D"))


def _mobile_numbers(rng: np.random.Generator, size: int) -> np.ndarray:
    # 07[1-9]xx xxxxxx mobiles that libphonenumber accepts as valid UK numbers.
    prefix = rng.choice(["71", "72", "73", "74", "75", "77", "78", "79"], size=size)
    rest = rng.integers(0, 10**8, size=size)
    return np.array([f"0{p}{r:08d}" for p, r in zip(prefix, rest)], dtype=object)


# Area codes and a first local digit in an allocated range, so the numbers are valid.
LANDLINE_RANGES = ["0207", "0208", "01614", "01214", "01132", "01179", "01414"]


def _landline_numbers(rng: np.random.Generator, size: int) -> np.ndarray:
    start = rng.choice(LANDLINE_RANGES, size=size)
    local = rng.integers(0, 10**7, size=size)
    return np.array([f"{s}{n:07d}"[:11] for s, n in zip(start, local)], dtype=object)


def _postcodes(rng: np.random.Generator, areas: np.ndarray) -> np.ndarray:
    district = rng.integers(1, 20, size=len(areas))
    sector = rng.integers(1, 10, size=len(areas))
    letters = rng.choice(list("ABDEFGHJLNPQRSTUWXYZ"), size=(len(areas), 2))
    return np.array(
        [f"{a}{d} {s}{l1}{l2}" for a, d, s, (l1, l2) in zip(areas, district, sector, letters)],
        dtype=object,
    )


# US numbering and addresses, all arrays: cities, their area codes and ZIP ranges.
US_CITIES = np.array([city[0] for city in US_REFERENCE["cities"]], dtype=object)
US_CITY_INDEX = {city: i for i, city in enumerate(US_CITIES)}
US_AREA_CODES = np.array([code for city in US_REFERENCE["cities"] for code in city[2]])
US_AREA_CODE_COUNT = np.array([len(city[2]) for city in US_REFERENCE["cities"]])
US_AREA_CODE_FIRST = np.cumsum(US_AREA_CODE_COUNT) - US_AREA_CODE_COUNT
US_ZIP_RANGES = np.array([[int(city[3]), int(city[4])] for city in US_REFERENCE["cities"]])
# Exchanges (the three digits after the area code) start with 2-9; no N11 service codes, no 555.
US_EXCHANGES = np.array([e for e in range(200, 1000) if e % 100 != 11 and e != 555])


def _digits(values: np.ndarray, width: int) -> pd.Series:
    return pd.Series(values).astype(str).str.zfill(width)


def _us_phone_numbers(
    rng: np.random.Generator, towns: np.ndarray | None, size: int, local_share: float
) -> np.ndarray:
    """Ten-digit US numbers: an area code of the town for `local_share` of them, else any."""
    area = rng.choice(US_AREA_CODES, size=size)
    if towns is not None:
        city = pd.Series(towns).map(US_CITY_INDEX).to_numpy(dtype=int)
        home = US_AREA_CODES[
            US_AREA_CODE_FIRST[city] + (rng.random(size) * US_AREA_CODE_COUNT[city]).astype(int)
        ]
        area = np.where(rng.random(size) < local_share, home, area)
    number = (
        area.astype(np.int64) * 10**7
        + rng.choice(US_EXCHANGES, size=size) * 10**4
        + rng.integers(0, 10**4, size=size)
    )
    return _digits(number, 10).to_numpy(dtype=object)


def _us_zip_codes(rng: np.random.Generator, towns: np.ndarray) -> np.ndarray:
    """ZIP+4 codes in the towns' ranges, "95814-1234"; sources write the five digits, or all."""
    zips = US_ZIP_RANGES[pd.Series(towns).map(US_CITY_INDEX).to_numpy(dtype=int)]
    five = zips[:, 0] + (rng.random(len(zips)) * (zips[:, 1] - zips[:, 0] + 1)).astype(int)
    return (_digits(five, 5) + "-" + _digits(rng.integers(1, 10**4, size=len(zips)), 4)).to_numpy(
        dtype=object
    )


def _us_places(
    rng: np.random.Generator, reference: dict, people: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Street, town, ZIP+4 and own phone of each person: "1234 Oak St", "55 W Main Street"."""
    town = US_CITIES[rng.integers(0, len(US_CITIES), size=people)]
    number = (10 ** (rng.random(people) * 4)).astype(int)  # 1-9999, short house numbers commoner
    directions = np.array(reference["street_directions"], dtype=object)
    direction = np.where(rng.random(people) < 0.2, rng.choice(directions, size=people) + " ", "")
    street = (
        _digits(number, 1)
        + " "
        + direction
        + _zipf_choice(rng, reference["streets"], people, 0.5)
        + " "
        + rng.choice(reference["street_types"], size=people)
    )
    # Most keep the mobile number of a town they lived in before, or got it elsewhere.
    phone = _us_phone_numbers(rng, town, people, local_share=0.7)
    return street.to_numpy(dtype=object), town, _us_zip_codes(rng, town), phone


def make_people(
    rng: np.random.Generator, people: int, calendar: Calendar, profile: Profile = UK
) -> pd.DataFrame:
    """One row per true person, households and twins included."""
    reference = profile.reference
    female = rng.random(people) < 0.52
    first = np.where(
        female,
        _zipf_choice(rng, reference["female_first_names"], people),
        _zipf_choice(rng, reference["male_first_names"], people),
    )
    # Exponents chosen so the commonest names are a few percent of people, as in the UK
    # (Smith ~1.3%, Olivia ~1.5% of girls); steeper ones made a name barely tell anyone apart.
    last = _zipf_choice(rng, reference["surnames"], people, exponent=0.6)
    birth = _random_dates(
        rng,
        calendar.end_date - timedelta(days=90 * 365),
        calendar.end_date - timedelta(days=18 * 365),
        people,
    )
    if profile.name == "us":
        street, town, postcode, phone = _us_places(rng, reference, people)
    else:
        towns = rng.integers(0, len(reference["towns"]), size=people)
        town = np.array([reference["towns"][t][0] for t in towns], dtype=object)
        area = np.array([reference["towns"][t][1] for t in towns], dtype=object)
        street = np.array(
            [
                f"{n} {s} {t}"
                for n, s, t in zip(
                    rng.integers(1, 200, size=people),
                    _zipf_choice(rng, reference["streets"], people, 0.5),
                    rng.choice(reference["street_types"], size=people),
                )
            ],
            dtype=object,
        )
        postcode, phone = _postcodes(rng, area), _mobile_numbers(rng, people)
    frame = pd.DataFrame(
        {
            "person_id": [f"P{i:07d}" for i in range(people)],
            "female": female,
            "first_name": first,
            "last_name": last,
            "birth": birth,
            "street": street,
            "town": town,
            "postcode": postcode,
            "phone": phone,
            "household": np.arange(people),
        }
    )
    _form_households(rng, frame, profile)
    frame["email"] = _personal_emails(rng, frame, reference["email_providers"])
    frame["maiden_name"] = np.where(
        frame["female"] & (rng.random(people) < MAIDEN_NAME_RATE * 5),
        _zipf_choice(rng, reference["surnames"], people, exponent=0.6),
        None,
    )
    frame["activity"] = rng.lognormal(mean=0.0, sigma=1.0, size=people)
    return frame


def _form_households(rng: np.random.Generator, frame: pd.DataFrame, profile: Profile = UK) -> None:
    """Groups of 2-4 people sharing address, a landline and usually the surname; some twins."""
    members = np.flatnonzero(rng.random(len(frame)) < HOUSEHOLD_SHARE)
    rng.shuffle(members)
    ends = np.cumsum(rng.integers(2, 5, size=len(members)))
    ends = ends[ends <= len(members)]  # whole groups only
    if not len(ends):
        return
    starts = np.concatenate([[0], ends[:-1]])
    members = members[: ends[-1]]
    group = np.searchsorted(ends, np.arange(len(members)), side="right")
    head = members[starts[group]]
    for column in ("street", "town", "postcode"):
        values = frame[column].to_numpy(dtype=object)
        values[members] = values[head]
        frame[column] = values
    frame.loc[members, "household"] = head
    if profile.name == "us":  # a home phone has the area code of the home
        landlines = _us_phone_numbers(
            rng, frame["town"].to_numpy()[members[starts]], len(ends), local_share=1.0
        )
    else:
        landlines = _landline_numbers(rng, len(ends))
    frame.loc[members, "phone"] = landlines[group]  # the shared home phone
    last = frame["last_name"].to_numpy(dtype=object)
    shares_surname = rng.random(len(members)) < 0.8
    last[members[shares_surname]] = last[head[shares_surname]]
    # Twins: the second member of some households shares the first's birth date and surname.
    twins = rng.random(len(ends)) < TWIN_SHARE / HOUSEHOLD_SHARE * 2
    twin, twin_head = members[starts[twins] + 1], members[starts[twins]]
    last[twin] = last[twin_head]
    frame["last_name"] = last
    birth = frame["birth"].to_numpy().copy()
    birth[twin] = birth[twin_head]
    frame["birth"] = birth


def _personal_emails(
    rng: np.random.Generator, frame: pd.DataFrame, providers: list[str]
) -> np.ndarray:
    local_style = rng.integers(0, 4, size=len(frame))
    numbers = rng.integers(1, 999, size=len(frame))
    provider = rng.choice(providers, size=len(frame))
    emails = []
    for first, last, style, n, domain in zip(
        frame["first_name"], frame["last_name"], local_style, numbers, provider
    ):
        first_key, last_key = _ascii_key(first), _ascii_key(last)
        local = [
            f"{first_key}.{last_key}",
            f"{first_key}{last_key}{n}",
            f"{first_key[0]}{last_key}",
            f"{last_key}.{first_key}{n}",
        ][style]
        emails.append(f"{local}@{domain}")
    emails = np.array(emails, dtype=object)
    # A mailbox is one person's: a clash of generated addresses gets a number.
    clash = pd.Series(emails).duplicated().to_numpy()
    emails[clash] = [e.replace("@", f"{i}@") for e, i in zip(emails[clash], np.flatnonzero(clash))]
    # A couple sharing one family address.
    family = (frame["household"].to_numpy() != np.arange(len(frame))) & (
        rng.random(len(frame)) < FAMILY_EMAIL_RATE / HOUSEHOLD_SHARE
    )
    heads = frame["household"].to_numpy()
    emails[family] = emails[heads[family]]
    return emails


def _ascii_key(name: str) -> str:
    from anyascii import anyascii

    return "".join(ch for ch in anyascii(name).lower() if ch.isalpha())


# ---------------------------------------------------------------- accounts


def assign_accounts(
    rng: np.random.Generator, people: pd.DataFrame, calendar: Calendar
) -> dict[str, pd.DataFrame]:
    """Which person holds which record in which source, and when it was registered."""
    n = len(people)
    membership = {source: rng.random(n) < share for source, share in SHARE_WITH.items()}
    nobody = ~np.any(list(membership.values()), axis=0)
    fallback = rng.choice(["web", "store"], size=n)
    for source in ("web", "store"):
        membership[source] |= nobody & (fallback == source)

    registration = _registration_dates(rng, n, calendar)
    accounts = {}
    for source, held in membership.items():
        holders = np.flatnonzero(held)
        if source == "web":
            holders = np.concatenate(
                [holders, holders[rng.random(len(holders)) < SECOND_WEB_ACCOUNT]]
            )
        if source == "store":
            holders = np.concatenate(
                [holders, holders[rng.random(len(holders)) < SECOND_STORE_CARD]]
            )
        if source == "callcenter":
            # Contacts are records of their own: 1-3 per caller.
            holders = np.repeat(holders, rng.integers(1, 4, size=len(holders)))
        holders = np.sort(holders, kind="stable")
        registered = (
            registration[holders]
            + pd.to_timedelta(rng.integers(0, 200, size=len(holders)), unit="D").to_numpy()
        )
        registered = np.minimum(registered, np.datetime64(calendar.end_date))
        frame = pd.DataFrame({"person": holders, "registered": pd.to_datetime(registered)})
        frame["registered"] += pd.to_timedelta(rng.integers(0, 86400, size=len(frame)), unit="s")
        frame["second"] = pd.Series(holders).duplicated().to_numpy() & (source != "callcenter")
        accounts[source] = frame.reset_index(drop=True)
    return accounts


def _registration_dates(rng: np.random.Generator, n: int, calendar: Calendar) -> np.ndarray:
    """Most people predate the first delivery; with several days, each later day brings new people."""
    dates = (
        _random_dates(rng, calendar.history_start - timedelta(days=365), calendar.first_delivery, n)
        .to_numpy()
        .copy()
    )
    if calendar.days > 1:
        newcomers = rng.random(n) < 0.02 * (calendar.days - 1)
        later_day = rng.integers(1, calendar.days, size=n)
        dates[newcomers] = np.datetime64(calendar.first_delivery) + later_day[newcomers].astype(
            "timedelta64[D]"
        )
    return dates


# ---------------------------------------------------------------- mess


def apply_typos(rng: np.random.Generator, names: pd.Series, rate: float) -> pd.Series:
    """One substituted, deleted or transposed letter in a share of the names."""
    names = names.copy()
    chosen = np.flatnonzero(
        (rng.random(len(names)) < rate)
        & names.notna().to_numpy()
        & (names.str.len().fillna(0).to_numpy() > 3)
    )
    kinds = rng.integers(0, 3, size=len(chosen))
    positions = rng.random(len(chosen))
    letters = rng.choice(list("aeiourstnl"), size=len(chosen))
    values = names.to_numpy(dtype=object)
    for i, kind, position, letter in zip(chosen, kinds, positions, letters):
        name = values[i]
        at = 1 + int(position * (len(name) - 2))
        if kind == 0:
            values[i] = name[:at] + letter + name[at + 1 :]
        elif kind == 1:
            values[i] = name[:at] + name[at + 1 :]
        else:
            values[i] = name[: at - 1] + name[at] + name[at - 1] + name[at + 1 :]
    return pd.Series(values, index=names.index)


def apply_nicknames(rng: np.random.Generator, first_names: pd.Series) -> pd.Series:
    table = pd.read_csv(NICKNAME_TABLE)
    nicknames = table.groupby("given_name")["nickname"].apply(list).to_dict()
    values = first_names.to_numpy(dtype=object).copy()
    chosen = np.flatnonzero(rng.random(len(values)) < NICKNAME_RATE)
    picks = rng.random(len(chosen))
    for i, pick in zip(chosen, picks):
        options = nicknames.get(str(values[i]).lower())
        if options:
            values[i] = options[int(pick * len(options))].capitalize()
    return pd.Series(values, index=first_names.index)


def format_phones(rng: np.random.Generator, phones: pd.Series) -> pd.Series:
    """The same number written the ways people and systems write it."""
    styles = rng.integers(0, 7, size=len(phones))
    out = []
    for number, style in zip(phones, styles):
        if pd.isna(number):
            out.append(None)
            continue
        national = number[1:]
        split = 5 if number.startswith("07") else len(number) - 7
        out.append(
            [
                f"{number[:split]} {number[split:]}",
                f"+44 {national[: split - 1]} {national[split - 1 :]}",
                f"44{national}",
                number,
                f"({number[:split]}) {number[split : split + 3]}-{number[split + 3 :]}",
                f"+44{national}",
                f"{number[:split]}.{number[split : split + 3]}.{number[split + 3 :]}",
            ][style]
        )
    return pd.Series(out, index=phones.index, dtype=object)


def format_us_phones(rng: np.random.Generator, phones: pd.Series) -> pd.Series:
    """Ten-digit US numbers written the ways people and systems write them."""
    styles = rng.integers(0, 7, size=len(phones))
    digits = phones.fillna("0000000000").to_numpy(dtype="U10")
    parts = digits.view(
        [("area", "U3"), ("exchange", "U3"), ("line", "U4")]
    )  # slices, without copying
    styled = [
        ("(", "area", ") ", "exchange", "-", "line"),
        ("area", ".", "exchange", ".", "line"),
        ("1-", "area", "-", "exchange", "-", "line"),
        ("+1 ", "area", " ", "exchange", " ", "line"),
        ("area", "-", "exchange", "-", "line"),
        ("digits",),
        ("+1", "digits"),
    ]
    out = np.empty(len(phones), dtype=object)
    for style, pieces in enumerate(styled):  # seven styles, each written for its rows at once
        rows = styles == style
        fields = {
            "digits": digits[rows],
            **{name: parts[name][rows] for name in ("area", "exchange", "line")},
        }
        text = np.full(int(rows.sum()), "", dtype="U16")
        for piece in pieces:
            text = np.char.add(text, fields.get(piece, piece))
        out[rows] = text
    out[phones.isna().to_numpy()] = None
    return pd.Series(out, index=phones.index, dtype=object)


def _write_phones(rng: np.random.Generator, phones: pd.Series, profile: Profile) -> pd.Series:
    return format_us_phones(rng, phones) if profile.name == "us" else format_phones(rng, phones)


def mess_emails(rng: np.random.Generator, emails: pd.Series) -> pd.Series:
    """Capitals, stray spaces, and gmail's ignored dots and +tags."""
    values = emails.to_numpy(dtype=object).copy()
    roll = rng.random(len(values))
    for i in np.flatnonzero(roll < 0.12):
        email = values[i]
        if pd.isna(email):
            continue
        local, _, domain = email.partition("@")
        if roll[i] < 0.04:
            values[i] = f" {local.capitalize()}@{domain.upper()} "
        elif roll[i] < 0.08 and domain == "gmail.com":
            values[i] = f"{local.replace('.', '')}+shop@{domain}"
        elif domain == "gmail.com":
            values[i] = (
                f"{local[:2]}.{local[2:]}@googlemail.com"
                if "." not in local
                else f"{local}@googlemail.com"
            )
    return pd.Series(values, index=emails.index)


def _blank(rng: np.random.Generator, series: pd.Series, share: float) -> pd.Series:
    return series.where(rng.random(len(series)) >= share, None)


def _upper(rng: np.random.Generator, series: pd.Series, share: float) -> pd.Series:
    upper = rng.random(len(series)) < share
    return series.where(~upper, series.str.upper())


# ---------------------------------------------------------------- records per source


def _identity_fields(
    rng: np.random.Generator,
    people: pd.DataFrame,
    accounts: pd.DataFrame,
    source: str,
    profile: Profile = UK,
) -> pd.DataFrame:
    """Name, phone, e-mail, birth date and address of each record, with the source's mess."""
    person = people.iloc[accounts["person"].to_numpy()].reset_index(drop=True)
    first = apply_typos(rng, apply_nicknames(rng, person["first_name"]), TYPO_RATE[source])
    last = person["last_name"].where(
        person["maiden_name"].isna() | (rng.random(len(person)) > 0.5), person["maiden_name"]
    )
    last = apply_typos(rng, last, TYPO_RATE[source])
    first, last = (
        _upper(rng, first, UPPER_CASE_RATE[source]),
        _upper(rng, last, UPPER_CASE_RATE[source]),
    )
    phone = _blank(rng, person["phone"], MISSING[source].get("phone", 0))
    email = person["email"].copy()
    # A second account is opened with another address; the rest is the same person.
    second = accounts["second"].to_numpy()
    email[second] = [f"{e.split('@')[0]}.{rng.integers(10, 99)}@outlook.com" for e in email[second]]
    email = _blank(rng, mess_emails(rng, email), MISSING[source].get("email", 0))
    moved = rng.random(len(person)) < MOVED_RATE
    if profile.name == "us":  # to an apartment in another part of town
        street = person["street"].where(
            ~moved,
            person["street"] + " Apt " + pd.Series(rng.integers(1, 40, len(person))).astype(str),
        )
        postcode = person["postcode"].where(~moved, _us_zip_codes(rng, person["town"].to_numpy()))
    else:
        street = person["street"].where(
            ~moved,
            "Flat "
            + pd.Series(rng.integers(1, 9, len(person))).astype(str)
            + ", "
            + person["street"],
        )
        postcode = person["postcode"].where(
            ~moved, _postcodes(rng, person["postcode"].str.extract(r"^([A-Z]+)")[0].to_numpy())
        )
    return pd.DataFrame(
        {
            "person_id": person["person_id"],
            "first": first,
            "last": last,
            "phone": _write_phones(rng, phone, profile),
            "email": email,
            "birth": person["birth"].where(
                rng.random(len(person)) >= MISSING[source].get("birth", 0)
            ),
            "street": _blank(rng, street, MISSING[source].get("street", 0)),
            "town": person["town"],
            "postcode": _blank(rng, postcode, MISSING[source].get("postcode", 0)),
        }
    )


def _date_text(values: pd.Series, fmt: str) -> pd.Series:
    return values.dt.strftime(fmt).where(values.notna(), None)


def _epoch_ms(moments: pd.Series) -> pd.Series:
    return moments.dt.as_unit("ms").astype("int64")


def _bool_text(rng: np.random.Generator, size: int, share_true: float) -> np.ndarray:
    return np.where(rng.random(size) < share_true, "true", "false")


def web_customers(rng, people, accounts, profile: Profile = UK) -> pd.DataFrame:
    fields = _identity_fields(rng, people, accounts, "web", profile)
    if profile.name == "us":  # address lookup at checkout fills in ZIP+4 now and then
        postcode = fields["postcode"].where(
            rng.random(len(fields)) < 0.15, fields["postcode"].str[:5]
        )
    else:
        postcode = fields["postcode"].where(
            rng.random(len(fields)) >= 0.15, fields["postcode"].str.replace(" ", "").str.lower()
        )
    return pd.DataFrame(
        {
            "account_id": [f"W{i:07d}" for i in range(len(fields))],
            "email": fields["email"],
            "first_name": fields["first"],
            "last_name": fields["last"],
            "phone": fields["phone"],
            "birth_date": _date_text(fields["birth"], "%Y-%m-%d"),
            "street": fields["street"],
            "city": fields["town"],
            "postcode": postcode,
            "country": profile.country,
            "created_at": accounts["registered"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "marketing_opt_in": _bool_text(rng, len(fields), 0.55),
            "_person_id": fields["person_id"],
            "_registered": accounts["registered"],
        }
    )


def app_users(rng, people, accounts, profile: Profile = UK) -> pd.DataFrame:
    fields = _identity_fields(rng, people, accounts, "app", profile)
    return pd.DataFrame(
        {
            "user_id": [f"U{i:07d}" for i in range(len(fields))],
            "email": fields["email"],
            "name": (fields["first"].fillna("") + " " + fields["last"].fillna("")).str.strip(),
            "phone": fields["phone"],
            "birthday": _date_text(fields["birth"], "%m/%d/%Y"),
            "signup_ts": _epoch_ms(accounts["registered"]),
            "push_opt_in": rng.random(len(fields)) < 0.45,
            "_person_id": fields["person_id"],
            "_registered": accounts["registered"],
        }
    )


def store_members(rng, people, accounts, profile: Profile = UK) -> pd.DataFrame:
    fields = _identity_fields(rng, people, accounts, "store", profile)
    if profile.name == "us":
        postcode = fields["postcode"].where(
            rng.random(len(fields)) < 0.10, fields["postcode"].str[:5]
        )
    else:
        postcode = fields["postcode"].where(
            rng.random(len(fields)) >= 0.3, fields["postcode"].str.replace(" ", "")
        )
    return pd.DataFrame(
        {
            "card_number": [f"{6000000000 + i * 7:010d}" for i in range(len(fields))],
            "first_name": fields["first"],
            "last_name": fields["last"],
            "phone": fields["phone"],
            "postcode": postcode,
            "date_of_birth": _date_text(fields["birth"], "%d/%m/%Y"),
            "enrolled_on": accounts["registered"].dt.strftime("%Y-%m-%d"),
            "store_id": rng.choice([f"ST{i:03d}" for i in range(1, 41)], size=len(fields)),
            "_person_id": fields["person_id"],
            "_registered": accounts["registered"],
        }
    )


def callcenter_contacts(rng, people, accounts, profile: Profile = UK) -> pd.DataFrame:
    fields = _identity_fields(rng, people, accounts, "callcenter", profile)
    last_first = rng.random(len(fields)) < LAST_FIRST_RATE
    name = np.where(
        last_first,
        fields["last"].fillna("") + ", " + fields["first"].fillna(""),
        fields["first"].fillna("") + " " + fields["last"].fillna(""),
    )
    goodwill = np.where(
        rng.random(len(fields)) < 0.08,
        rng.choice([50, 100, 200, 500], size=len(fields)).astype(str),
        None,
    )
    csat = np.where(
        rng.random(len(fields)) < 0.6, rng.integers(1, 6, size=len(fields)).astype(str), None
    )
    return pd.DataFrame(
        {
            "contact_id": [f"K{i:08d}" for i in range(len(fields))],
            "caller_name": pd.Series(name).str.strip(" ,"),
            "phone": fields["phone"],
            "email": fields["email"] if profile.callcenter_emails else None,
            "contacted_at": accounts["registered"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": rng.choice(profile.reference["contact_reasons"], size=len(fields)),
            "resolution": rng.choice(profile.reference["contact_resolutions"], size=len(fields)),
            "csat": csat,
            "goodwill_points": goodwill,
            "_person_id": fields["person_id"],
            "_registered": accounts["registered"],
        }
    )


# ---------------------------------------------------------------- activity


def _event_times(
    rng: np.random.Generator,
    records: pd.DataFrame,
    people: pd.DataFrame,
    per_year: float,
    calendar: Calendar,
) -> pd.DataFrame:
    """Moments of a channel's events: a Poisson count per record from its person's activity."""
    person_index = records["_person_id"].str[1:].astype(int).to_numpy()
    start = records["_registered"].clip(lower=pd.Timestamp(calendar.history_start))
    end = pd.Timestamp(calendar.end_date) + pd.Timedelta(hours=23)
    years = ((end - start).dt.total_seconds() / (365 * 86400)).clip(lower=0).to_numpy()
    counts = rng.poisson(people["activity"].to_numpy()[person_index] * per_year * years)
    owner = np.repeat(np.arange(len(records)), counts)
    span = (end - start).dt.total_seconds().to_numpy()[owner]
    moments = start.to_numpy()[owner] + (rng.random(len(owner)) * span).astype("timedelta64[s]")
    return (
        pd.DataFrame({"record": owner, "at": pd.to_datetime(moments)})
        .sort_values(["at", "record"], kind="stable")
        .reset_index(drop=True)
    )


def _amounts(rng: np.random.Generator, size: int, median: float) -> np.ndarray:
    return np.round(rng.lognormal(np.log(median), 0.7, size=size), 2)


def web_orders(rng, customers, people, calendar, currency: str = "GBP") -> pd.DataFrame:
    events = _event_times(rng, customers, people, 3.0, calendar)
    status = rng.choice(
        ["completed", "refunded", "cancelled"], size=len(events), p=[0.92, 0.05, 0.03]
    )
    return pd.DataFrame(
        {
            "order_id": [f"WO{i:08d}" for i in range(len(events))],
            "account_id": customers["account_id"].to_numpy()[events["record"]],
            "ordered_at": events["at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "total_amount": [f"{a:.2f}" for a in _amounts(rng, len(events), 40)],
            "currency": currency,
            "status": status,
            "_at": events["at"],
        }
    )


def app_events(rng, users, people, calendar) -> pd.DataFrame:
    events = _event_times(rng, users, people, 6.0, calendar)
    kind = rng.choice(
        ["purchase", "share", "review", "check_in", "redeem"],
        size=len(events),
        p=[0.45, 0.15, 0.1, 0.27, 0.03],
    )
    amount = np.where(kind == "purchase", _amounts(rng, len(events), 25), np.nan)
    amount = np.where(kind == "redeem", rng.integers(1, 11, size=len(events)) * 100.0, amount)
    return pd.DataFrame(
        {
            "event_id": [f"AE{i:09d}" for i in range(len(events))],
            "user_id": users["user_id"].to_numpy()[events["record"]],
            "type": kind,
            "ts": _epoch_ms(events["at"]),
            "amount": amount,
            "_at": events["at"],
        }
    )


def store_transactions(rng, members, people, calendar) -> pd.DataFrame:
    events = _event_times(rng, members, people, 4.0, calendar)
    kind = rng.choice(["sale", "return", "redeem"], size=len(events), p=[0.94, 0.04, 0.02])
    amount = np.where(
        kind == "redeem",
        rng.integers(1, 11, size=len(events)) * 100.0,
        _amounts(rng, len(events), 30),
    )
    card = members["card_number"].to_numpy()[events["record"]]
    stores = members["store_id"].to_numpy()[events["record"]]
    # Anonymous sales: a fifth of all sales carry no card.
    anonymous = pd.DataFrame(
        {"at": _random_dates(rng, calendar.history_start, calendar.end_date, len(events) // 4)}
    )
    anonymous["at"] += pd.to_timedelta(
        rng.integers(8 * 3600, 20 * 3600, size=len(anonymous)), unit="s"
    )
    frame = (
        pd.DataFrame(
            {
                "store_id": np.concatenate(
                    [stores, rng.choice(stores if len(stores) else ["ST001"], size=len(anonymous))]
                ),
                "card_number": np.concatenate([card, np.full(len(anonymous), None, dtype=object)]),
                "_at": pd.concat([events["at"], anonymous["at"]], ignore_index=True),
                "amount": np.concatenate([amount, _amounts(rng, len(anonymous), 15)]),
                "kind": np.concatenate([kind, np.full(len(anonymous), "sale", dtype=object)]),
            }
        )
        .sort_values("_at", kind="stable")
        .reset_index(drop=True)
    )
    frame.insert(0, "txn_id", [f"T{i:09d}" for i in range(len(frame))])
    frame.insert(3, "txn_ts", frame["_at"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    frame["amount"] = [f"{a:.2f}" for a in frame["amount"]]
    return frame


# ---------------------------------------------------------------- referrals

REFERRAL_CODE_SHARE = 0.35  # of web accounts and app users, a code of their own to share
REFERRED_SHARE = 0.08  # of people's first web or app record, signed up with someone's code
LATE_REFERRED_SHARE = 0.05  # of later records (the person was a customer already)
# Of the later web/app records of people with several: signed up with their first one's code.
SELF_REFERRED_SHARE = 0.05
CAPPED_REFERRER_REFERRALS = 8  # one member brings this many qualifying people in one year
HOUSEHOLD_REFERRALS = 5  # sign-ups with the code of someone they live with
QUALIFY_DAYS = 30  # as in the default program (pipelines/program.yaml, referrals)


def add_referrals(
    records: dict[str, pd.DataFrame],
    web_orders: pd.DataFrame,
    calendar: Calendar,
    seed: int,
    households: pd.Series | None = None,
) -> None:
    """Give web accounts and app users their referral_code and referred_by columns, in place.

    Drawn from a random stream of their own ([seed, 171]) and added after every other draw,
    so every other file stays byte-identical for a seed. What loyalty.referrals should see:
    people referred by another member (rewarded, or never buying: not qualified, or recent:
    pending), a second account referred by the person's own first one (same customer),
    later records of people who were customers already, one member over the yearly cap
    (CAPPED_REFERRER_REFERRALS qualifying sign-ups in one year), a few sign-ups with the code
    of someone in their household (`households`: person_id -> household; same_household
    where the program counts a household as self), and a few unknown codes.
    """
    rng = np.random.default_rng([seed, 171])
    keys = {"web_customers": "account_id", "app_users": "user_id"}
    coded = pd.concat(
        [
            records[table]
            .drop_duplicates(key)[[key, "_person_id", "_registered"]]
            .rename(columns={key: "key"})
            .assign(table=table)
            for table, key in keys.items()
        ],
        ignore_index=True,
    )
    # First registration per person over web, app and store (a call-center contact is no joining).
    store = records["store_members"].drop_duplicates("card_number")
    joined = pd.concat([coded[["_person_id", "_registered"]], store[["_person_id", "_registered"]]])
    first_at = joined.groupby("_person_id")["_registered"].min()
    coded["is_first"] = coded["_registered"].to_numpy() == first_at[coded["_person_id"]].to_numpy()
    coded = coded.sort_values(["_registered", "table", "key"], kind="stable").reset_index(drop=True)

    n = len(coded)
    number = rng.permutation(n) + 10 ** len(str(n))
    code = pd.Series([f"RF{x}" for x in number], dtype=object).where(
        rng.random(n) < REFERRAL_CODE_SHARE, None
    )
    referred_by = pd.Series(None, index=coded.index, dtype=object)

    # Self-referrals: the later of a person's two web/app records uses the first one's code.
    repeat = coded["_person_id"].duplicated(keep="first") & (rng.random(n) < SELF_REFERRED_SHARE)
    first_of_person = coded.groupby("_person_id").cumcount() == 0
    first_index = pd.Series(
        coded.index[first_of_person], index=coded["_person_id"][first_of_person]
    )
    own_first = first_index[coded.loc[repeat, "_person_id"]].to_numpy()
    without = np.unique(own_first[code.iloc[own_first].isna().to_numpy()])
    code.iloc[without] = [f"RS{i}" for i in without]
    referred_by[repeat] = code.iloc[own_first].to_numpy()

    def someone_elses_code(rows: np.ndarray) -> np.ndarray:
        """A code held by a record registered before each row's (the list is in time order)."""
        holders = np.flatnonzero(code.notna().to_numpy())
        if not len(holders):
            return np.full(len(rows), None, dtype=object)
        before = np.searchsorted(holders, rows, side="left")
        pick = holders[np.minimum((rng.random(len(rows)) * before).astype(int), len(holders) - 1)]
        return np.where(before > 0, code.to_numpy()[pick], None)

    free = referred_by.isna() & code.isna()
    chosen = np.flatnonzero(
        free
        & np.where(
            coded["is_first"], rng.random(n) < REFERRED_SHARE, rng.random(n) < LATE_REFERRED_SHARE
        )
    )
    referred_by.iloc[chosen] = someone_elses_code(chosen)

    # Recent sign-ups with a code: most have not bought yet (pending).
    recent = np.flatnonzero(
        (referred_by.isna() & coded["is_first"]).to_numpy()
        & (
            coded["_registered"] >= pd.Timestamp(calendar.end_date) - pd.Timedelta(days=20)
        ).to_numpy()
    )[:5]
    referred_by.iloc[recent] = someone_elses_code(recent)

    # Household members: a few first sign-ups use the code of the household's earliest code
    # holder, another person registered before them. No draws: the stream is unchanged.
    if households is not None:
        household = households.reindex(coded["_person_id"]).to_numpy()
        holding = np.flatnonzero(code.notna().to_numpy())
        earliest_holder = pd.Series(holding, index=household[holding]).groupby(level=0).min()
        holder_of = earliest_holder.reindex(household).to_numpy()
        has_holder = ~np.isnan(holder_of)
        holder_index = np.where(has_holder, holder_of, 0).astype(int)
        person = coded["_person_id"].to_numpy()
        candidates = np.flatnonzero(
            (referred_by.isna() & coded["is_first"] & code.isna()).to_numpy()
            & has_holder
            & (holder_index < np.arange(n))
            & (person != person[holder_index])
        )[:HOUSEHOLD_REFERRALS]
        referred_by.iloc[candidates] = code.to_numpy()[holder_index[candidates]]

    # One member over the yearly cap: the earliest code holder brings web customers who buy
    # within QUALIFY_DAYS, all registered in the same calendar year.
    completed = web_orders[web_orders["status"] == "completed"]
    first_order = completed.groupby("account_id")["_at"].min()
    web_first = coded[(coded["table"] == "web_customers") & coded["is_first"] & referred_by.isna()]
    bought = first_order.reindex(web_first["key"]).to_numpy()
    quick = web_first[
        (bought >= web_first["_registered"].to_numpy())
        & (bought < (web_first["_registered"] + pd.Timedelta(days=QUALIFY_DAYS)).to_numpy())
    ]
    holder = np.flatnonzero(code.notna().to_numpy())[:1]
    if len(quick) and len(holder):
        quick = quick[quick.index > holder[0]]
        quick = quick[quick["_person_id"] != coded.at[holder[0], "_person_id"]]
        year = quick["_registered"].dt.year.mode()
        same_year = quick[quick["_registered"].dt.year == year.iloc[0]] if len(year) else quick
        referred_by[same_year.index[:CAPPED_REFERRER_REFERRALS]] = code.iloc[holder[0]]

    # Codes that match nobody's.
    unknown = np.flatnonzero((referred_by.isna() & coded["is_first"]).to_numpy())[-3:]
    referred_by.iloc[unknown] = [f"ZZ{i}" for i in range(len(unknown))]

    # Typed by hand now and then: lower case, stray spaces (staging trims and upper-cases).
    messy = referred_by.notna() & (rng.random(n) < 0.1)
    referred_by[messy] = " " + referred_by[messy].str.lower() + " "

    for table, key in keys.items():
        mine = coded["table"] == table
        frame = records[table]
        frame["referral_code"] = frame[key].map(dict(zip(coded.loc[mine, "key"], code[mine])))
        frame["referred_by"] = frame[key].map(dict(zip(coded.loc[mine, "key"], referred_by[mine])))


# ---------------------------------------------------------------- deliveries and files


def _new_phones(rng: np.random.Generator, size: int, profile: Profile) -> np.ndarray:
    """Written phone numbers for records that changed theirs."""
    if profile.name == "us":
        return format_us_phones(
            rng, pd.Series(_us_phone_numbers(rng, None, size, local_share=0.0))
        ).to_numpy()
    return format_phones(rng, pd.Series(_mobile_numbers(rng, size))).to_numpy()


# The paid membership plans of pipelines/program.yaml (memberships.plans): name -> (price,
# months, share of buyers, chance a period is renewed). "Plus Weekly" is no plan of the program:
# one fee names it, so the demo shows an unknown_plan membership.
MEMBERSHIP_PLANS = {"Plus Monthly": (4.99, 1, 0.7, 0.85), "Plus Annual": (49.00, 12, 0.3, 0.6)}
UNKNOWN_PLAN = ("Plus Weekly", 1.99)


def _add_months(moments: pd.Series, months: np.ndarray) -> pd.Series:
    """moments + months, the day clamped to the month's end as DuckDB's to_months does."""
    total = (moments.dt.year * 12 + moments.dt.month - 1 + months).to_numpy()
    first = pd.to_datetime(pd.DataFrame({"year": total // 12, "month": total % 12 + 1, "day": 1}))
    day = np.minimum(moments.dt.day.to_numpy(), first.dt.days_in_month.to_numpy())
    return (
        first + pd.to_timedelta(day - 1, unit="D") + (moments - moments.dt.normalize()).to_numpy()
    )


def membership_fees(seed: int, customers: pd.DataFrame, calendar: Calendar, currency: str):
    """Web orders that buy a paid membership plan (membership_plan set), from a random stream of
    their own so every other file stays byte-identical for a seed. About 4% of web accounts
    buy a plan at a random moment after registering; each period is renewed (a new fee the
    moment it ends) with the plan's chance while the calendar lasts. The most recent fee that
    ends its chain is refunded, and one account pays for a plan the program does not know."""
    rng = np.random.default_rng([seed, 172])
    names = list(MEMBERSHIP_PLANS)
    price, months, share, renewal = (np.array(v) for v in zip(*MEMBERSHIP_PLANS.values()))
    end = pd.Timestamp(calendar.end_date) + pd.Timedelta(hours=23)
    is_buyer = rng.random(len(customers)) < 0.04
    plan = rng.choice(len(names), size=len(customers), p=share)
    periods = rng.geometric(1 - renewal[plan])  # fees in the chain: 1 + renewals
    fraction = rng.random(len(customers))
    buyers = np.flatnonzero(is_buyer)
    start = customers["_registered"].iloc[buyers].clip(lower=pd.Timestamp(calendar.history_start))
    start = (start + (end - start) * fraction[buyers]).dt.floor("s").reset_index(drop=True)
    owner = np.repeat(np.arange(len(buyers)), periods[buyers])
    nth = np.arange(len(owner)) - np.repeat(
        np.cumsum(periods[buyers]) - periods[buyers], periods[buyers]
    )
    plan_of = plan[buyers][owner]
    at = _add_months(start.iloc[owner].reset_index(drop=True), months[plan_of] * nth)
    fees = pd.DataFrame(
        {
            "account_id": customers["account_id"].to_numpy()[buyers][owner],
            "_at": at,
            "membership_plan": np.array(names)[plan_of],
            "total_amount": price[plan_of],
            "status": "completed",
        }
    )
    fees = fees[fees["_at"] <= end].sort_values(["_at", "account_id"], kind="stable")
    unknown = pd.DataFrame(
        {
            "account_id": [customers["account_id"].iloc[int(rng.integers(len(customers)))]],
            "_at": [end - pd.Timedelta(days=20)],
            "membership_plan": [UNKNOWN_PLAN[0]],
            "total_amount": [UNKNOWN_PLAN[1]],
            "status": ["completed"],
        }
    )
    fees = pd.concat([fees, unknown], ignore_index=True)
    fees.insert(0, "order_id", [f"WM{i:07d}" for i in range(len(fees))])
    fees["ordered_at"] = fees["_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    fees["total_amount"] = [f"{a:.2f}" for a in fees["total_amount"]]
    fees["currency"] = currency
    fees["_day"] = calendar.delivery_of(fees["_at"])
    # The refund: the latest fee ending its chain at least 15 days before the end, delivered
    # as refunded a week after the fee (or at once when the calendar has no later day).
    ends_chain = ~fees["account_id"].duplicated(keep="last") & (
        fees["_at"] <= end - pd.Timedelta(days=15)
    )
    ends_chain &= fees["membership_plan"] != UNKNOWN_PLAN[0]
    if ends_chain.any():
        refunded = fees[ends_chain].tail(1).assign(status="refunded")
        refunded["_day"] = np.minimum(refunded["_day"] + 7, calendar.days - 1)
        if refunded["_day"].iloc[0] > fees.loc[refunded.index[0], "_day"]:
            fees = pd.concat([fees, refunded], ignore_index=True)
        else:
            fees.loc[refunded.index[0], "status"] = "refunded"
    return fees


def _updates(
    rng: np.random.Generator, frame: pd.DataFrame, calendar: Calendar, change: dict
) -> pd.DataFrame:
    """Re-deliveries of some existing keys on later days, with a changed field."""
    if calendar.days == 1 or frame.empty:
        return frame.iloc[0:0]
    chosen = frame[(frame["_day"] < calendar.days - 1) & (rng.random(len(frame)) < 0.02)].copy()
    chosen["_day"] = [rng.integers(d + 1, calendar.days) for d in chosen["_day"]]
    for column, values in change.items():
        chosen[column] = values(len(chosen))
    return chosen


def corrupt(
    rng: np.random.Generator, frame: pd.DataFrame, table: str, rate: float
) -> tuple[pd.DataFrame, np.ndarray]:
    """Break a share of the rows the way real exports break; returns rows to cut short (CSV)."""
    spec = source_file(table)
    bad = np.flatnonzero(rng.random(len(frame)) < rate)
    short = np.zeros(len(frame), dtype=bool)
    if not len(bad):
        return frame, short
    frame = frame.astype(object)  # a broken value is text, whatever the column held
    key = spec.key[0]
    typed = [c for c in spec.columns if c.type in ("date", "timestamp", "decimal", "enum")]
    for row, kind in zip(bad, rng.integers(0, 4, size=len(bad))):
        if kind == 0:
            frame.iat[row, frame.columns.get_loc(key)] = ""
        elif kind == 1 and typed:
            column = typed[row % len(typed)]
            broken = {
                "date": "31/31/1990",
                "timestamp": "not-a-time",
                "decimal": "-12.50",
                "enum": "teleport",
            }[column.type]
            frame.iat[row, frame.columns.get_loc(column.name)] = broken
        else:
            short[row] = True  # a CSV row with a field missing, or a truncated JSON line
    return frame, short


# ---------------------------------------------------------------- partner sales

# The default program's partners (pipelines/program.yaml) and one it does not know.
PARTNERS = ["SkyMiles Air", "FuelUp", "Corner Cafe"]
UNKNOWN_PARTNER = "Galaxy Cinemas"
PARTNER_STREAM = 173  # issue 17's third part: its own random stream


def partner_earnings(seed: int, people: pd.DataFrame, calendar: Calendar, profile: Profile = UK):
    """Other companies' sales naming a person by e-mail, phone or both, as partners write them.

    Drawn from a stream of its own ([seed, PARTNER_STREAM]) so every other file stays the
    same for a seed. Most rows are people's own e-mails or phones (written the partner's
    way: capitals, spaces, another phone format); some are strangers (no_match), a few give
    neither (no_contact), household members share a landline (ambiguous when the phone
    alone names them), and some come from a partner the program does not know.
    """
    rng = np.random.default_rng([seed, PARTNER_STREAM])
    n = max(1, int(len(people) * 0.3))
    who = rng.integers(0, len(people), size=n)
    contact = rng.choice(
        ["email", "phone", "both", "stranger", "none"], size=n, p=[0.42, 0.3, 0.15, 0.1, 0.03]
    )
    emails = mess_emails(
        rng, people["email"].reset_index(drop=True).iloc[who].reset_index(drop=True)
    )
    phones = _write_phones(
        rng, people["phone"].reset_index(drop=True).iloc[who].reset_index(drop=True), profile
    )
    strangers = pd.Series([f"guest{i:06d}@partner-mail.example" for i in range(n)])
    stranger_phones = pd.Series(_new_phones(rng, n, profile))
    is_stranger = contact == "stranger"
    email = emails.where(np.isin(contact, ["email", "both"]), None)
    email = email.where(~is_stranger, strangers)
    phone = phones.where(np.isin(contact, ["phone", "both"]), None)
    phone = phone.where(~is_stranger, stranger_phones)
    partner = rng.choice(PARTNERS, size=n, p=[0.4, 0.35, 0.25]).astype(object)
    partner[rng.random(n) < 0.04] = UNKNOWN_PARTNER
    start = pd.Timestamp(calendar.end_date) - pd.Timedelta(days=365)
    at = start + pd.to_timedelta(rng.random(n) * 366 * 86400 - 3600, unit="s").round("s")
    order = np.argsort(at.to_numpy(), kind="stable")
    frame = pd.DataFrame(
        {
            "partner": partner[order],
            "email": email.to_numpy()[order],
            "phone": phone.to_numpy()[order],
            "_at": at.to_numpy()[order],
            "amount": [f"{a:.2f}" for a in _amounts(rng, n, 25)[order]],
        }
    )
    frame.insert(0, "partner_txn_id", [f"PT{i:08d}" for i in range(n)])
    frame["occurred_at"] = frame["_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["_day"] = calendar.delivery_of(frame["_at"])
    return frame


def write_delivery(
    frame: pd.DataFrame, table: str, folder: Path, day: date, short: np.ndarray, compress: bool
) -> Path:
    spec = source_file(table)
    name = Path(spec.pattern.replace("*", day.strftime("%Y%m%d")))
    path = folder / (str(name) + (".gz" if compress else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = spec.column_names
    if spec.format == "csv":
        lines = frame[columns].to_csv(index=False, lineterminator="\n").split("\n")
        body = [line.rsplit(",", 1)[0] if cut else line for line, cut in zip(lines[1:], short)]
        text = "\n".join([lines[0], *body[: len(frame)]]) + "\n"
    else:
        lines = frame[columns].to_json(orient="records", lines=True, force_ascii=False).splitlines()
        # A truncated line is what a crashed export leaves behind.
        rendered = [line[: len(line) // 2] if cut else line for line, cut in zip(lines, short)]
        text = "\n".join(rendered) + ("\n" if rendered else "")
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def generate_inbox(
    people: int,
    seed: int,
    out_dir: Path,
    truth_path: Path | None = None,
    days: int = 1,
    end_date: date | None = None,
    bad_row_rate: float = 0.001,
    compress: bool = False,
    profile: str = "uk",
) -> dict[str, int]:
    """Write an inbox in the export contract's format; returns rows written per file kind.

    `profile` is the country of the people: "uk" (UK numbers and postcodes) or "us".
    """
    if people < 1 or days < 1:
        raise ValueError("people and days must be at least 1")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
    country = PROFILES[profile]
    calendar = Calendar(end_date or datetime.now(UTC).date(), days)
    rng = np.random.default_rng(seed)
    population = make_people(rng, people, calendar, country)
    accounts = assign_accounts(rng, population, calendar)

    records = {
        "web_customers": web_customers(rng, population, accounts["web"], country),
        "app_users": app_users(rng, population, accounts["app"], country),
        "store_members": store_members(rng, population, accounts["store"], country),
        "callcenter_contacts": callcenter_contacts(
            rng, population, accounts["callcenter"], country
        ),
    }
    activity = {
        "web_orders": web_orders(
            rng, records["web_customers"], population, calendar, country.currency
        ),
        "app_events": app_events(rng, records["app_users"], population, calendar),
        "store_transactions": store_transactions(
            rng, records["store_members"], population, calendar
        ),
    }
    # Paid membership fees: more web orders, from a random stream of their own (see
    # membership_fees), written after each day's orders are corrupted so the main stream's
    # draws and every other row stay as they were.
    fees = membership_fees(seed, records["web_customers"], calendar, country.currency)
    for frame in records.values():
        frame["_day"] = calendar.delivery_of(frame["_registered"])
    for frame in activity.values():
        frame["_day"] = calendar.delivery_of(frame["_at"])
    # Later days also re-deliver known keys: new consent, a new phone, a refund.
    records["web_customers"] = pd.concat(
        [
            records["web_customers"],
            _updates(
                rng,
                records["web_customers"],
                calendar,
                {"marketing_opt_in": lambda n: _bool_text(rng, n, 0.5)},
            ),
        ]
    )
    records["store_members"] = pd.concat(
        [
            records["store_members"],
            _updates(
                rng,
                records["store_members"],
                calendar,
                {"phone": lambda n: _new_phones(rng, n, country)},
            ),
        ]
    )
    activity["web_orders"] = pd.concat(
        [
            activity["web_orders"],
            _updates(
                rng,
                activity["web_orders"][activity["web_orders"]["status"] == "completed"],
                calendar,
                {"status": lambda n: np.full(n, "refunded")},
            ),
        ]
    )

    add_referrals(
        records,
        activity["web_orders"],
        calendar,
        seed,
        households=pd.Series(population["household"].to_numpy(), index=population["person_id"]),
    )

    counts: dict[str, int] = {}
    out_dir = Path(out_dir)
    for table, frame in {**records, **activity}.items():
        spec = source_file(table)
        for day in range(days):
            todays = frame[frame["_day"] == day]
            broken, short = corrupt(rng, todays.reset_index(drop=True), table, bad_row_rate)
            if table == "web_orders":
                todays_fees = fees[fees["_day"] == day]
                broken = pd.concat([broken, todays_fees], ignore_index=True)
                short = np.concatenate([short, np.zeros(len(todays_fees), dtype=bool)])
            write_delivery(
                broken,
                table,
                out_dir,
                calendar.first_delivery + timedelta(days=day),
                short,
                compress,
            )
        counts[f"{spec.source}/{spec.entity}"] = len(frame) + (
            len(fees) if table == "web_orders" else 0
        )

    # Written after every other file, from its own random stream: the files above stay
    # byte-identical for a seed.
    partner = partner_earnings(seed, population, calendar, country)
    partner_rng = np.random.default_rng([seed, PARTNER_STREAM, 1])  # its bad rows, too
    for day in range(days):
        todays = partner[partner["_day"] == day].reset_index(drop=True)
        broken, short = corrupt(partner_rng, todays, "partner_earnings", bad_row_rate)
        write_delivery(
            broken,
            "partner_earnings",
            out_dir,
            calendar.first_delivery + timedelta(days=day),
            short,
            compress,
        )
    counts["partner/earnings"] = len(partner)

    if truth_path is not None:
        truth = pd.concat(
            [
                pd.DataFrame(
                    {
                        "source": source_file(t).source,
                        "source_record_id": f[source_file(t).key[0]],
                        "person_id": f["_person_id"],
                    }
                )
                for t, f in records.items()
            ]
        ).drop_duplicates(["source", "source_record_id"])
        Path(truth_path).parent.mkdir(parents=True, exist_ok=True)
        truth.to_csv(truth_path, index=False, lineterminator="\n")
    return counts
