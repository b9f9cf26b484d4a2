"""The data generator: reproducible, in the contract's format, with the hard cases present."""

import csv
import gzip
import hashlib
import json
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from assets.ingest.contract import source_files
from pipelines.generator import generate_inbox

END = date(2026, 6, 30)


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def read(path: Path) -> list[dict]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    text = data.decode("utf-8")
    if ".jsonl" in path.name:
        return [json.loads(line) for line in text.splitlines() if line]
    return list(csv.DictReader(text.splitlines()))


@pytest.fixture(scope="module")
def clean_inbox(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clean")
    generate_inbox(
        people=1500,
        seed=3,
        out_dir=folder / "inbox",
        truth_path=folder / "truth.csv",
        end_date=END,
        bad_row_rate=0,
    )
    return folder


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        generate_inbox(
            people=300,
            seed=seed,
            out_dir=tmp_path / name,
            truth_path=tmp_path / name / "truth.csv",
            end_date=END,
        )
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_files_follow_the_contract(clean_inbox):
    # Every source's export; erasure requests (privacy.yaml) are written by `omniloyal forget`.
    for spec in (spec for spec in source_files() if spec.customer_records):
        path = clean_inbox / "inbox" / spec.pattern.replace("*", END.strftime("%Y%m%d"))
        rows = read(path)
        assert rows, spec.table
        if spec.format == "csv":
            header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
            assert header == spec.column_names, spec.table
        for column in spec.columns:
            values = [row.get(column.name) for row in rows]
            present = [v for v in values if v not in (None, "")]
            if column.required:
                assert len(present) == len(values), (spec.table, column.name)
            if column.type == "enum":
                assert set(present) <= set(column.values), (spec.table, column.name)
            if column.type == "date":
                for value in present:
                    datetime.strptime(value, column.format)
            if column.type == "timestamp" and column.format == "epoch_ms":
                assert all(1.4e12 < int(v) < 1.9e12 for v in present), (spec.table, column.name)
            if column.type == "timestamp" and column.format == "iso8601":
                for value in present:
                    datetime.fromisoformat(value)
            if column.type == "decimal" and column.min is not None:
                assert all(float(v) >= column.min for v in present), (spec.table, column.name)


def test_truth_covers_every_customer_record_once(clean_inbox):
    truth = pd.read_csv(clean_inbox / "truth.csv", dtype=str)
    assert not truth.duplicated(["source", "source_record_id"]).any()
    keys = {
        "web": ("web/customers", "account_id"),
        "app": ("app/users", "user_id"),
        "store": ("store/members", "card_number"),
        "callcenter": ("callcenter/contacts", "contact_id"),
    }
    for source, (stem, key) in keys.items():
        path = next((clean_inbox / "inbox").glob(stem + "_*"))
        written = {str(row[key]) for row in read(path)}
        assert written == set(truth.loc[truth["source"] == source, "source_record_id"]), source


def test_the_hard_cases_are_in_the_data(clean_inbox):
    truth = pd.read_csv(clean_inbox / "truth.csv", dtype=str)
    inbox = clean_inbox / "inbox"
    web = pd.DataFrame(read(next(inbox.glob("web/customers_*")))).merge(
        truth[truth.source == "web"], left_on="account_id", right_on="source_record_id"
    )
    assert (web.groupby("person_id").size() >= 2).any(), "a person with two web accounts"
    store = pd.DataFrame(read(next(inbox.glob("store/members_*")))).merge(
        truth[truth.source == "store"], left_on="card_number", right_on="source_record_id"
    )
    assert (store.groupby("person_id").size() >= 2).any(), "a person with two store cards"
    # A household phone: one number, several different people.
    digits = store["phone"].str.replace(r"\D", "", regex=True).str[-10:]
    assert (
        store.assign(d=digits).dropna(subset=["phone"]).groupby("d")["person_id"].nunique() >= 2
    ).any()
    contacts = read(next(inbox.glob("callcenter/contacts_*")))
    assert any("," in (row["caller_name"] or "") for row in contacts), "a 'Last, First' caller name"
    nicknames = {
        "Bob",
        "Liz",
        "Bill",
        "Kate",
        "Jim",
        "Mike",
        "Tom",
        "Dave",
        "Chris",
        "Sue",
        "Jenny",
        "Alex",
        "Ben",
        "Sam",
    }
    assert set(web["first_name"]) & nicknames, "nicknames in place of given names"
    assert (store["first_name"].str.isupper()).any(), "upper-case names at the store desk"


def test_several_days_deliver_new_records_and_updates(tmp_path):
    generate_inbox(people=1500, seed=5, out_dir=tmp_path, end_date=END, days=3, bad_row_rate=0)
    files = sorted(p.name for p in (tmp_path / "web").glob("customers_*"))
    assert files == ["customers_20260628.csv", "customers_20260629.csv", "customers_20260630.csv"]
    day_one = {r["account_id"] for r in read(tmp_path / "web" / files[0])}
    later = [r["account_id"] for f in files[1:] for r in read(tmp_path / "web" / f)]
    assert set(later) & day_one, "later days update keys of day one"
    assert set(later) - day_one, "later days bring new accounts"


def test_gzip_output(tmp_path):
    generate_inbox(people=200, seed=1, out_dir=tmp_path, end_date=END, compress=True)
    path = next((tmp_path / "app").glob("events_*.jsonl.gz"))
    assert read(path)


def test_bad_rows_only_when_asked(tmp_path):
    def broken(folder: Path) -> int:
        count = 0
        for path in (folder / "app").glob("events_*.jsonl"):
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    count += 1
                    continue
                count += (
                    row["event_id"] == "" or row["type"] == "teleport" or isinstance(row["ts"], str)
                )
        return count

    generate_inbox(people=300, seed=1, out_dir=tmp_path / "clean", end_date=END, bad_row_rate=0)
    generate_inbox(people=300, seed=1, out_dir=tmp_path / "bad", end_date=END, bad_row_rate=0.2)
    assert broken(tmp_path / "clean") == 0
    assert broken(tmp_path / "bad") > 0


# ---------------------------------------------------------------- the "us" profile


@pytest.fixture(scope="module")
def us_inbox(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("us")
    generate_inbox(
        people=1500,
        seed=3,
        out_dir=folder / "inbox",
        truth_path=folder / "truth.csv",
        end_date=END,
        bad_row_rate=0,
        profile="us",
    )
    return folder


def us_rows(folder: Path, stem: str) -> list[dict]:
    return read(next((folder / "inbox").glob(stem + "_*")))


US_PHONE_STYLES = {
    "(916) 658-1680": r"\(\d{3}\) \d{3}-\d{4}",
    "916.658.1680": r"\d{3}\.\d{3}\.\d{4}",
    "1-916-658-1680": r"1-\d{3}-\d{3}-\d{4}",
    "+1 916 658 1680": r"\+1 \d{3} \d{3} \d{4}",
    "916-658-1680": r"\d{3}-\d{3}-\d{4}",
}


def test_us_profile_writes_valid_us_phones_in_several_styles(us_inbox):
    import re

    import phonenumbers

    phones = [
        row["phone"]
        for stem in ("web/customers", "app/users", "store/members", "callcenter/contacts")
        for row in us_rows(us_inbox, stem)
        if row["phone"]
    ]
    assert len(phones) > 2000
    for phone in phones:
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone, "US")), phone
        assert not phone.startswith(("0", "+44", "44")), phone
    for example, pattern in US_PHONE_STYLES.items():
        assert sum(re.fullmatch(pattern, p) is not None for p in phones) > 100, example
    # Households share a landline: one number, several different people.
    truth = pd.read_csv(us_inbox / "truth.csv", dtype=str)
    store = pd.DataFrame(us_rows(us_inbox, "store/members")).merge(
        truth[truth.source == "store"], left_on="card_number", right_on="source_record_id"
    )
    digits = store["phone"].str.replace(r"\D", "", regex=True).str[-10:]
    assert (
        store.assign(d=digits)[store["phone"] != ""].groupby("d")["person_id"].nunique() >= 2
    ).any()


def test_us_profile_addresses_and_country(us_inbox):
    import re

    from pipelines.generator import US_REFERENCE

    cities = {city[0] for city in US_REFERENCE["cities"]}
    web = us_rows(us_inbox, "web/customers")
    assert {row["country"] for row in web} == {"US"}
    assert {row["city"] for row in web} <= cities
    streets = [row["street"] for row in web if row["street"]]
    assert all(re.fullmatch(r"\d{1,4} ([NSEW] )?\w+ \w+( Apt \d+)?", s) for s in streets), streets[
        :5
    ]
    assert any(re.fullmatch(r"\d{1,4} [NSEW] \w+ \w+", s) for s in streets), (
        "a street with a direction"
    )
    postcodes = [
        row["postcode"]
        for stem in ("web/customers", "store/members")
        for row in us_rows(us_inbox, stem)
        if row["postcode"]
    ]
    assert all(re.fullmatch(r"\d{5}(-\d{4})?", p) for p in postcodes)
    assert sum("-" in p for p in postcodes) > 50, "some ZIP+4"
    assert sum("-" not in p for p in postcodes) > len(postcodes) / 2, "mostly five digits"
    assert {row["currency"] for row in us_rows(us_inbox, "web/orders")} == {"USD"}


def test_us_profile_has_no_emails_at_the_store_or_call_center(us_inbox):
    contacts = us_rows(us_inbox, "callcenter/contacts")
    assert contacts and "email" in contacts[0]
    assert all(row["email"] == "" for row in contacts)
    assert "email" not in us_rows(us_inbox, "store/members")[0]
    assert all(row["email"] for row in us_rows(us_inbox, "web/customers")), (
        "web and app keep e-mails"
    )
    app = us_rows(us_inbox, "app/users")
    assert sum(bool(row["email"]) for row in app) > 0.9 * len(app)


def test_us_profile_follows_the_contract_and_has_the_hard_cases(us_inbox):
    test_files_follow_the_contract(
        us_inbox
    )  # birth-date formats are the contract's, whatever the profile
    test_truth_covers_every_customer_record_once(us_inbox)
    test_the_hard_cases_are_in_the_data(us_inbox)


def test_uk_is_the_default_profile(tmp_path):
    generate_inbox(
        people=300,
        seed=4,
        out_dir=tmp_path / "default",
        truth_path=tmp_path / "default" / "truth.csv",
        end_date=END,
        days=2,
    )
    generate_inbox(
        people=300,
        seed=4,
        out_dir=tmp_path / "uk",
        truth_path=tmp_path / "uk" / "truth.csv",
        end_date=END,
        days=2,
        profile="uk",
    )
    generate_inbox(
        people=300,
        seed=4,
        out_dir=tmp_path / "us",
        truth_path=tmp_path / "us" / "truth.csv",
        end_date=END,
        days=2,
        profile="us",
    )
    assert digest(tmp_path / "default") == digest(tmp_path / "uk")
    assert digest(tmp_path / "us").keys() == digest(tmp_path / "uk").keys()
    assert digest(tmp_path / "us") != digest(tmp_path / "uk")
    assert {row["country"] for row in read(tmp_path / "uk" / "web" / "customers_20260630.csv")} == {
        "GB"
    }
    with pytest.raises(ValueError, match="profile"):
        generate_inbox(people=10, seed=1, out_dir=tmp_path / "fr", end_date=END, profile="fr")


def test_generate_command_takes_a_profile(tmp_path, capsys):
    from pipelines.cli import main

    assert (
        main(
            [
                "generate",
                "--people",
                "200",
                "--seed",
                "2",
                "--profile",
                "us",
                "--out",
                str(tmp_path),
                "--end-date",
                END.isoformat(),
            ]
        )
        == 0
    )
    assert {row["country"] for row in read(tmp_path / "web" / "customers_20260630.csv")} == {"US"}
    with pytest.raises(SystemExit):
        main(["generate", "--profile", "fr", "--out", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err
