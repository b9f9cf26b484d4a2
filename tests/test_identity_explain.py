"""`omniloyal identity explain`: a customer's records, links, cut links and decisions, on a real run."""

import csv
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.cli import main
from pipelines.generator import generate_inbox

AS_OF = "2026-06-30"


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def explained(tmp_path_factory) -> dict:
    """One run on 300 people, with a steward keeping apart two records of one true person."""
    tmp_path = tmp_path_factory.mktemp("explain")
    generate_inbox(
        people=300,
        seed=29,
        out_dir=tmp_path / "inbox",
        truth_path=tmp_path / "truth.csv",
        end_date=date.fromisoformat(AS_OF),
        bad_row_rate=0,
    )
    with (tmp_path / "truth.csv").open(newline="") as file:
        people: dict[str, list[str]] = {}
        for row in csv.DictReader(file):
            people.setdefault(row["person_id"], []).append(
                f"{row['source']}:{row['source_record_id']}"
            )
    a, b = next(sorted(ids)[:2] for _, ids in sorted(people.items()) if len(ids) >= 2)
    decisions = tmp_path / "decisions.csv"
    decisions.write_text(
        "decision,source_a,record_id_a,source_b,record_id_b,reason\n"
        "different_people,{},{},{},{},Kept apart after a call with Mrs Example\n".format(
            *a.split(":", 1), *b.split(":", 1)
        )
    )
    warehouse = tmp_path / "w" / "omniloyal.duckdb"
    assert (
        main(
            [
                "run",
                "--inbox",
                str(tmp_path / "inbox"),
                "--warehouse",
                str(warehouse),
                "--exports",
                str(tmp_path / "x"),
                "--reports",
                str(tmp_path / "r"),
                "--as-of",
                AS_OF,
                "--identity-overrides",
                str(decisions),
            ]
        )
        == 0
    )
    return {"warehouse": warehouse, "kept_apart": (a, b)}


def explain(capsys, warehouse: Path, customer_id: str, *extra: str) -> tuple[int, str, str]:
    code = main(["identity", "explain", customer_id, "--warehouse", str(warehouse), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def customer_of(warehouse: Path, unique_id: str) -> str:
    return query(
        warehouse,
        f"select customer_id from identity.source_records where source || ':' || source_record_id = '{unique_id}'",
    )[0][0]


@pytest.mark.e2e
def test_personal_data_is_masked_unless_asked_for(explained, capsys):
    warehouse = explained["warehouse"]
    # A customer of several records with names, e-mail and phone long enough to tell apart from their masks.
    customer_id, last_name, email, phone = query(
        warehouse,
        """
        select s.customer_id, any_value(m.last_name_key), any_value(m.email_key), any_value(m.phone_e164)
        from identity.source_records s
        join identity.match_input m using (source, source_record_id)
        where s.records_in_customer >= 2 and length(m.last_name_key) >= 6 and m.email_key is not null and m.phone_e164 is not null
        group by 1 order by 1 limit 1
    """,
    )[0]
    code, masked, err = explain(capsys, warehouse, customer_id)
    assert code == 0 and err == ""
    assert f"customer {customer_id}: " in masked and "personal data masked" in masked
    for value in (last_name, email, phone):
        assert value not in masked
    assert f"{last_name[0]}{'*' * (len(last_name) - 2)}{last_name[-1]}" in masked
    code, shown, _ = explain(capsys, warehouse, customer_id, "--show-personal-data")
    assert code == 0
    for value in (last_name, email, phone):
        assert value in shown
    # Every record of the customer is listed, by source and record id.
    for source, record_id in query(
        warehouse,
        f"select source, source_record_id from identity.source_records where customer_id = '{customer_id}'",
    ):
        assert any(line.split()[:2] == [source, record_id] for line in masked.splitlines())


@pytest.mark.e2e
def test_the_links_that_joined_the_records_with_their_weights(explained, capsys):
    warehouse = explained["warehouse"]
    customer_id, left, right, probability, name_weight = query(
        warehouse,
        """
        select s.customer_id, e.unique_id_l, e.unique_id_r, e.match_probability, e.name_weight
        from identity.match_evidence e
        join identity.source_records s on s.source || ':' || s.source_record_id = e.unique_id_l
        where e.is_linked and e.link_source = 'model'
        order by 1 limit 1
    """,
    )[0]
    linked = query(
        warehouse,
        f"""
        select count(*) from identity.match_evidence e
        join identity.source_records l on l.source || ':' || l.source_record_id = e.unique_id_l
        join identity.source_records r on r.source || ':' || r.source_record_id = e.unique_id_r
        where e.is_linked and l.customer_id = '{customer_id}' and r.customer_id = '{customer_id}'
    """,
    )[0][0]
    code, out, _ = explain(capsys, warehouse, customer_id)
    assert code == 0
    assert f"links that joined them ({linked})" in out
    row = next(line.split() for line in out.splitlines() if line.split()[:2] == [left, right])
    # record, other record, link, probability, match weight, name, birth date, e-mail, phone, address
    assert row[2:4] == ["model", f"{probability:.6f}"] and row[5] == f"{name_weight:+.2f}"


@pytest.mark.e2e
def test_a_link_cut_by_a_steward_names_the_other_customer_and_the_decision(explained, capsys):
    warehouse = explained["warehouse"]
    a, b = explained["kept_apart"]
    customer_a, customer_b = customer_of(warehouse, a), customer_of(warehouse, b)
    assert customer_a != customer_b
    code, out, _ = explain(capsys, warehouse, customer_a)
    assert code == 0
    lines = out.splitlines()
    cut = next(line.split() for line in lines if line.split()[:2] == [a, b])
    assert cut[2] == customer_b and cut[-1] == "steward"
    decisions = lines[lines.index("stewards' decisions naming its records (1)") + 2].split()
    assert decisions[:6] == ["2", "different_people", a, b, customer_b, "applied"]
    assert "Example" not in out  # the reason is masked with the rest
    assert "Mrs Example" in explain(capsys, warehouse, customer_a, "--show-personal-data")[1]


@pytest.mark.e2e
def test_an_unknown_customer_is_one_line_and_exit_code_2(explained, capsys):
    code, out, err = explain(capsys, explained["warehouse"], "CNOSUCHCUSTOMER")
    assert code == 2 and out == ""
    assert (
        err.startswith("omniloyal identity explain: no customer CNOSUCHCUSTOMER")
        and err.count("\n") == 1
    )


def test_a_missing_warehouse_is_one_line(tmp_path, capsys):
    code, out, err = explain(capsys, tmp_path / "nothing.duckdb", "C000000000000")
    assert code == 2 and out == ""
    assert (
        err
        == f"omniloyal identity explain: {tmp_path / 'nothing.duckdb'} does not exist (run `omniloyal run` first)\n"
    )


def test_a_file_that_is_not_a_warehouse_is_one_line(tmp_path, capsys):
    with duckdb.connect(str(tmp_path / "other.duckdb")) as con:
        con.execute("create table t (x integer)")
    code, _, err = explain(capsys, tmp_path / "other.duckdb", "C000000000000")
    assert (
        code == 2
        and err.startswith(f"omniloyal identity explain: {tmp_path / 'other.duckdb'}: ")
        and err.count("\n") == 1
    )


def test_the_command_line_starts_without_dagster_or_splink():
    code = (
        "import sys\n"
        "from pipelines.cli import build_parser\n"
        "build_parser().parse_args(['identity', 'explain', 'C1'])\n"
        "print(sorted(m for m in ('dagster', 'splink', 'pandas') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_bundled_program_default_is_the_program_module_s():
    from assets.loyalty.program import DEFAULT_PROGRAM
    from assets.shared.defaults import BUNDLED_PROGRAM

    assert BUNDLED_PROGRAM == DEFAULT_PROGRAM
