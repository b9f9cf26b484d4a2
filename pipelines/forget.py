"""`omniloyal forget`: write a request to be forgotten into the inbox, as a delivery.

The request is an ordinary delivery of the contract schemas/sources/privacy.yaml
(`privacy/erasure_requests_<request id>_<YYYYMMDD>.csv`, one row): the next run applies it
like a request the data protection team's tooling delivered (docs/privacy.md, "Erasure").

The file holds the person's e-mail or phone until a run has applied it, so it is written
readable by its owner only, under a temporary name and renamed into place (a run starting
meanwhile never reads half a file). Messages never show the e-mail or phone given.
"""

from __future__ import annotations

import csv
import io
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

from assets.ingest.contract import source_file

CONTRACT = source_file("erasure_requests")
COLUMNS = CONTRACT.column_names
SOURCES = next(c.values for c in CONTRACT.columns if c.name == "source")
# A request id becomes part of a file name: letters, digits, '.', '_' and '-' only.
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Characters people write phones with; the run standardizes the number itself.
PHONE = re.compile(r"\+?[0-9 ().\-/]{6,40}")


class ForgetError(ValueError):
    """A bad argument; the message is one line and never holds the e-mail or phone given."""


def new_request_id(now: datetime) -> str:
    return f"ER-{now:%Y%m%d}-{uuid.uuid4().hex[:8]}"


def check_request(
    email: str | None,
    phone: str | None,
    source: str | None,
    record_id: str | None,
    request_id: str | None,
) -> None:
    """Every problem with the arguments, before anything is written."""
    if not (email or phone or source or record_id):
        raise ForgetError(
            "name the person: --email, --phone, or --source with --record-id (any one is enough)"
        )
    if email is not None:
        from assets.staging.standardizers import standardize_email

        if standardize_email(email) is None:
            raise ForgetError("--email is not an e-mail address (the value is not shown)")
    if phone is not None:
        digits = sum(ch.isdigit() for ch in phone)
        if not PHONE.fullmatch(phone.strip()) or digits < 6:
            raise ForgetError("--phone is not a phone number (the value is not shown)")
    if (source is None) != (record_id is None):
        raise ForgetError("--source and --record-id go together: a record is named by both")
    if source is not None and source not in SOURCES:
        raise ForgetError(f"--source must be one of {', '.join(SOURCES)}, got {source!r}")
    if record_id is not None and (not record_id.strip() or "\n" in record_id or "\r" in record_id):
        raise ForgetError("--record-id is empty or spans lines")
    if request_id is not None and not REQUEST_ID.fullmatch(request_id):
        raise ForgetError(
            "--request-id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def write_request(
    inbox: Path,
    email: str | None = None,
    phone: str | None = None,
    source: str | None = None,
    record_id: str | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> tuple[Path, str]:
    """Write one request file into `inbox`; returns its path and the request id."""
    check_request(email, phone, source, record_id, request_id)
    now = now or datetime.now(UTC).replace(microsecond=0)
    request_id = request_id or new_request_id(now)
    folder = inbox / "privacy"
    path = folder / f"erasure_requests_{request_id}_{now:%Y%m%d}.csv"
    if not inbox.is_dir():
        raise ForgetError(f"{inbox}: inbox folder does not exist")
    if path.exists():
        raise ForgetError(
            f"{path}: a request file of that id and date exists already; not replaced"
        )
    row = {
        "request_id": request_id,
        "email": (email or "").strip(),
        "phone": (phone or "").strip(),
        "source": source or "",
        "source_record_id": (record_id or "").strip(),
        "received_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerow(row)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{path.name}.{os.getpid()}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.getvalue().encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
    return path, request_id
