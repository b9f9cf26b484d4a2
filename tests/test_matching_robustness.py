"""The identity step on data sets unlike the one it was built on: no e-mails, no phones,
too few records, no identifying fields at all; and the same output for the same input."""

from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.identity.matching import match_records
from assets.ingest.contract import source_files
from assets.ingest.deliveries import ingest_inbox
from assets.shared.warehouse import MACROS_FILE, connect, run_model
from assets.staging.standardizers import register_udfs
from pipelines.generator import generate_inbox

pytestmark = pytest.mark.e2e  # runs the pipeline on a generated inbox


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[pa.Table, dict[str, str]]:
    """identity.match_input of a generated inbox, and each record's true person."""
    return prepare(tmp_path_factory.mktemp("robust"), people=1500, seed=2024)


def prepare(folder, people: int, seed: int) -> tuple[pa.Table, dict[str, str]]:
    generate_inbox(
        people=people,
        seed=seed,
        out_dir=folder / "inbox",
        truth_path=folder / "truth.csv",
        end_date=date(2026, 11, 24),
        bad_row_rate=0,
    )
    con = connect(folder / "w.duckdb", {"as_of": date(2026, 11, 24)})
    con.execute(MACROS_FILE.read_text())
    register_udfs(con, "GB")
    ingest_inbox(con, folder / "inbox")
    for spec in source_files():
        run_model(con, f"staging/{spec.table}")
    for model in ("identity/record_keys", "identity/blocked_identifiers", "identity/match_input"):
        run_model(con, model)
    records = con.sql("select * from identity.match_input").to_arrow_table()
    con.close()
    truth = duckdb.sql(
        f"select source || ':' || source_record_id, person_id from read_csv('{folder / 'truth.csv'}', all_varchar=true)"
    ).fetchall()
    return records, dict(truth)


def pairwise_f1(
    records: pa.Table, clusters: pa.Table, truth: dict[str, str]
) -> tuple[float, float]:
    """Precision and recall of the pairs put in one cluster, against the truth."""
    cluster_of = dict(zip(clusters["unique_id"].to_pylist(), clusters["cluster_id"].to_pylist()))
    rows = [(cluster_of.get(uid, uid), truth[uid]) for uid in records["unique_id"].to_pylist()]
    con = duckdb.connect()
    con.execute("create table r (c varchar, p varchar)")
    con.executemany("insert into r values (?, ?)", rows)
    predicted, true, correct = con.execute(
        """
        with cells as (select c, p, count(*) as n from r group by all)
        select (select sum(n * (n - 1) / 2) from (select sum(n) as n from cells group by c)),
               (select sum(n * (n - 1) / 2) from (select sum(n) as n from cells group by p)),
               (select sum(n * (n - 1) / 2) from cells)
        """
    ).fetchall()[0]
    return correct / predicted, correct / true


def without(records: pa.Table, *columns: str) -> pa.Table:
    for column in columns:
        records = records.set_column(
            records.schema.get_field_index(column),
            column,
            pa.nulls(records.num_rows, records.schema.field(column).type),
        )
    return records


def test_a_data_set_without_emails_trains_on_what_it_has(prepared):
    records, truth = prepared
    result = match_records(without(records, "email_key"))
    assert "email_key" in result.training.skipped
    assert "phone_e164" in result.training.trained_on
    assert result.training.parameters == "trained"
    precision, recall = pairwise_f1(records, result.clusters, truth)
    assert precision >= 0.98 and recall >= 0.8, (precision, recall)


def test_a_data_set_without_phones_trains_on_what_it_has(prepared):
    records, truth = prepared
    result = match_records(without(records, "phone_e164"))
    assert "phone_e164" in result.training.skipped
    assert "email_key" in result.training.trained_on
    # The call center's records carry a name, a phone and sometimes an e-mail: without
    # phones many of them share only a name with the rest of their person.
    precision, recall = pairwise_f1(records, result.clusters, truth)
    assert precision >= 0.95 and recall >= 0.5, (precision, recall)


def test_too_few_records_fall_back_to_the_default_model_with_a_warning(prepared):
    records, truth = prepared
    # Forty records of a handful of people: two web accounts and their app and store records.
    people = list(dict.fromkeys(truth[uid] for uid in records["unique_id"].to_pylist()))[:15]
    small = records.filter(
        pc.is_in(
            pa.array([truth[uid] for uid in records["unique_id"].to_pylist()]), pa.array(people)
        )
    )
    result = match_records(small)
    assert result.training.parameters == "default"
    assert any("too few to train" in warning for warning in result.training.warnings)
    precision, recall = pairwise_f1(small, result.clusters, truth)
    assert precision == 1.0 and recall > 0.5, (precision, recall)


def test_records_without_identifying_fields_are_one_customer_each(prepared):
    records, _ = prepared
    bare = without(
        records,
        "first_name_key",
        "canonical_first_name",
        "last_name_key",
        "full_name_key",
        "email_key",
        "phone_e164",
        "birth_on",
        "postcode",
        "street_key",
    )
    result = match_records(bare)
    assert result.clusters.num_rows == 0 and result.evidence.num_rows == 0
    assert result.training.parameters == "none"
    assert "every record is a customer of its own" in result.training.warnings[0]


def test_no_records_at_all_make_no_customers(prepared):
    # An empty inbox on a first run: nothing to match, no division by zero records.
    records, _ = prepared
    result = match_records(records.slice(0, 0))
    assert result.clusters.num_rows == 0 and result.evidence.num_rows == 0
    assert result.training.parameters == "none" and result.training.records == 0


def test_the_same_records_give_the_same_clusters_evidence_and_model(prepared):
    # A third of the records: still trained (MIN_RECORDS_TO_TRAIN is 500), at a third of the time.
    records = prepared[0].slice(0, prepared[0].num_rows // 3)
    first, second = match_records(records), match_records(records)
    assert first.training.parameters == "trained"
    assert first.clusters.equals(second.clusters)
    assert first.evidence.equals(second.evidence)
    assert first.model_json == second.model_json


def test_blocked_and_overused_identifiers_are_not_evidence(tmp_path):
    """A placeholder e-mail and a shop's phone used by many customers join nobody."""
    con = connect(
        tmp_path / "w.duckdb", {"as_of": date(2026, 11, 24), "max_people_per_identifier": 3}
    )
    con.execute(
        "create or replace table identity.record_keys as select * from (values "
        "('web:1', 'web', '1', 'anna', 'anna', 'berg', 'anna berg', 'test@test.com', '+447700900001', date '1980-01-01', null, null, null::timestamp),"
        "('app:1', 'app', '1', 'carl', 'carl', 'dahl', 'carl dahl', 'test@test.com', '+447700900002', date '1990-02-02', null, null, null),"
        "('s:1', 'store', '1', 'eva', 'eva', 'falk', 'eva falk', null, '+441632960000', null, null, null, null),"
        "('s:2', 'store', '2', 'gus', 'gus', 'holm', 'gus holm', null, '+441632960000', null, null, null, null),"
        "('s:3', 'store', '3', 'ida', 'ida', 'jung', 'ida jung', null, '+441632960000', null, null, null, null),"
        "('s:4', 'store', '4', 'kai', 'kai', 'lund', 'kai lund', null, '+441632960000', null, null, null, null)"
        ") t(unique_id, source, source_record_id, first_name_key, canonical_first_name, last_name_key, full_name_key, "
        "email_key, phone_e164, birth_on, postcode, street_key, registered_at)"
    )
    con.execute(MACROS_FILE.read_text())
    run_model(con, "identity/blocked_identifiers")
    run_model(con, "identity/match_input")
    blocked = con.execute(
        "select kind, value, reason, records, people from identity.blocked_identifiers order by kind"
    ).fetchall()
    assert blocked == [
        ("email", "test@test.com", "listed: placeholder", 2, 2),
        ("phone", "+441632960000", "carried by 4 people, more than 3", 4, 4),
    ]
    left = con.execute(
        "select count(email_key), count(phone_e164) from identity.match_input"
    ).fetchall()[0]
    assert left == (0, 2)  # only the two personal phones remain


def test_a_small_data_set_with_twins_keeps_the_conflict_guard(tmp_path):
    # 400 people, seed 20: a few twins share household phones with their siblings. Judged on
    # record pairs, their share once switched the first-name rule off and merged households
    # (precision 0.951); judged on phones with a lower bound, the rule holds.
    records, truth = prepare(tmp_path, people=400, seed=20)
    result = match_records(records)
    first_names = result.guard.evidence["first_names"]
    assert first_names["contradicted_identifiers"] >= 1  # the twins are there
    assert result.guard.first_names and result.guard.birth_dates
    precision, recall = pairwise_f1(records, result.clusters, truth)
    assert precision >= 0.99, precision
