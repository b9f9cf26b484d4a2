"""Stewards' decisions: the file's checks, and their effect on customer ids, history and points."""

from datetime import date
from pathlib import Path

import duckdb
import pytest

from assets.identity.stable_ids import assign_stable_ids
from assets.identity.steward_decisions import (
    COLUMNS,
    StewardDecisionsError,
    applied_pairs,
    load_decisions,
    read_decisions,
)
from assets.loyalty.settling import INVARIANTS, broken_invariants
from assets.shared.warehouse import connect
from pipelines.cli import main
from pipelines.generator import generate_inbox

HEADER = ",".join(COLUMNS)


def write(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def warehouse_with_records(*unique_ids: str) -> duckdb.DuckDBPyConnection:
    con = connect(":memory:", {"as_of": date(2026, 6, 30)})
    con.execute("create table identity.match_input (unique_id varchar)")
    con.executemany("insert into identity.match_input values (?)", [[u] for u in unique_ids])
    return con


def statuses(con: duckdb.DuckDBPyConnection) -> dict[int, str]:
    return dict(con.execute("select line, status from identity.steward_decisions").fetchall())


# -- the file -----------------------------------------------------------------------------


def test_rows_are_checked_one_by_one_and_bad_rows_are_not_fatal(tmp_path):
    path = write(
        tmp_path / "decisions.csv",
        "same_person,web,W1,app,U1,same e-mail after a typo fix",
        "maybe,web,W1,store,S1,not sure",
        "",
        "different_people,web,W2,,,",
        "DIFFERENT_PEOPLE, store , S1,web,W1,twins",
        "same_person,web,W1,web,W1,self",
    )
    decisions = read_decisions(path)
    assert [(d.line, d.decision, d.unique_id_a, d.unique_id_b, d.status) for d in decisions] == [
        (2, "same_person", "web:W1", "app:U1", "applied"),
        (
            3,
            None,
            "web:W1",
            "store:S1",
            "invalid: decision must be same_person or different_people",
        ),
        (5, "different_people", "web:W2", None, "invalid: empty source_b, record_id_b, reason"),
        (6, "different_people", "store:S1", "web:W1", "applied"),
        (7, "same_person", "web:W1", "web:W1", "invalid: a record paired with itself"),
    ]


def test_columns_may_come_in_any_order_with_extra_ones_and_a_bom(tmp_path):
    path = tmp_path / "decisions.csv"
    path.write_text(
        "\ufeffreason,record_id_b,source_b,ticket,record_id_a,source_a,decision\n"
        "checked with the customer,U1,app,T-12,W1,web,same_person\n",
        encoding="utf-8",
    )
    (decision,) = read_decisions(path)
    assert (
        decision.decision,
        decision.unique_id_a,
        decision.unique_id_b,
        decision.reason,
        decision.status,
    ) == ("same_person", "web:W1", "app:U1", "checked with the customer", "applied")


def test_a_missing_column_fails_with_the_file_named_and_no_data_shown(tmp_path):
    # No header: the first row is data, and must not be echoed in the error.
    path = write(
        tmp_path / "decisions.csv",
        "same_person,web,W1,app,U1,ok",
        header="same_person,web,W9,app,Jane Doe,ok",
    )
    with pytest.raises(StewardDecisionsError) as error:
        read_decisions(path)
    message = str(error.value)
    assert message.startswith(
        f"{path}: missing column(s) decision, source_a, record_id_a, source_b, record_id_b, reason"
    )
    assert "\n" not in message and "Jane" not in message


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "steward decisions file not found"),
        (b"", "empty file"),
        (b"decision,source_a\n\xff\xfe\x00", "not a UTF-8 text file"),
    ],
)
def test_a_file_that_cannot_be_used_fails_in_one_line(tmp_path, content, problem):
    path = tmp_path / "decisions.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(StewardDecisionsError, match=f"^{path}: {problem}"):
        read_decisions(path)


def test_unknown_records_are_reported_and_only_applied_pairs_reach_matching(tmp_path):
    con = warehouse_with_records("web:W1", "app:U1", "store:S1", "web:W2")
    path = write(
        tmp_path / "decisions.csv",
        "same_person,web,W1,app,U1,ok",
        "same_person,web,W1,web,NOPE,typo in the id",
        "different_people,web,W2,store,S1,twins",
        "never,web,W2,store,S1,?",
    )
    assert load_decisions(con, path) == {"applied": 2, "unknown": 1, "invalid": 1}
    assert statuses(con) == {
        2: "applied",
        3: "unknown record",
        4: "applied",
        5: "invalid: decision must be same_person or different_people",
    }
    must_link, cannot_link = applied_pairs(con)
    # unique_id_l < unique_id_r, as matching expects.
    assert must_link.to_pylist() == [{"unique_id_l": "app:U1", "unique_id_r": "web:W1"}]
    assert cannot_link.to_pylist() == [{"unique_id_l": "store:S1", "unique_id_r": "web:W2"}]


def test_contradicting_decisions_are_not_applied(tmp_path):
    con = warehouse_with_records("web:W1", "app:U1", "store:S1", "web:W2", "app:U2")
    path = write(
        tmp_path / "decisions.csv",
        "same_person,web,W1,app,U1,one",
        "same_person,app,U1,store,S1,two",
        "different_people,store,S1,web,W1,three",  # W1 = U1 = S1, yet S1 and W1 are two people
        "same_person,web,W2,app,U2,unrelated",
    )
    assert load_decisions(con, path) == {"applied": 1, "unknown": 0, "invalid": 3}
    assert statuses(con) == {
        2: "invalid: contradicts line 4",
        3: "invalid: contradicts line 4",
        4: "invalid: contradicts line 2, 3",
        5: "applied",
    }


def test_without_a_file_the_table_exists_and_is_empty():
    con = warehouse_with_records("web:W1")
    assert load_decisions(con, None) == {"applied": 0, "unknown": 0, "invalid": 0}
    assert con.execute("describe identity.steward_decisions").fetchall()[0][:2] == (
        "line",
        "BIGINT",
    )
    assert [p.num_rows for p in applied_pairs(con)] == [0, 0]


def test_the_table_is_documented_as_loaded(tmp_path):
    from assets.shared.catalog import documented_tables

    con = warehouse_with_records("web:W1")
    load_decisions(con, None)
    actual = [
        (c, t.lower()) for c, t, *_ in con.execute("describe identity.steward_decisions").fetchall()
    ]
    assert actual == [(c.name, c.type) for c in documented_tables()["identity.steward_decisions"]]


# -- customer ids ---------------------------------------------------------------------------


def test_a_move_of_a_record_named_by_a_decision_is_recorded_as_steward(tmp_path):
    con = connect(":memory:", {"as_of": date(2026, 6, 30)})
    con.execute(
        "create table identity.match_input as select * from (values "
        "('web:r1', 'web', 'r1', timestamp '2025-01-01'), ('app:r2', 'app', 'r2', timestamp '2025-01-02'), "
        "('web:r3', 'web', 'r3', timestamp '2025-01-03'), ('store:r4', 'store', 'r4', timestamp '2025-01-04'), "
        "('store:r5', 'store', 'r5', timestamp '2025-01-05'), ('app:r6', 'app', 'r6', timestamp '2025-01-06')) "
        "t(unique_id, source, source_record_id, registered_at)"
    )
    # Before: A = {r1, r2, r6}, B = {r3}, D = {r4}, E = {r5}.
    con.execute(
        "create table identity.source_records as select * from (values "
        "('web', 'r1', 'A', date '2026-01-01', 3), ('app', 'r2', 'A', date '2026-01-01', 3), "
        "('app', 'r6', 'A', date '2026-01-01', 3), "
        "('web', 'r3', 'B', date '2026-02-01', 1), ('store', 'r4', 'D', date '2026-01-01', 1), "
        "('store', 'r5', 'E', date '2026-02-01', 1)) "
        "t(source, source_record_id, customer_id, customer_since, records_in_customer)"
    )
    # A steward says r1 and r2 are two people and r3 is r1; the model alone merged r4 and r5.
    load_decisions(
        con,
        write(
            tmp_path / "d.csv",
            "different_people,web,r1,app,r2,twins",
            "same_person,web,r3,web,r1,moved",
        ),
    )
    con.execute(
        "create table identity.clusters as select * from (values "
        "('web:r1', 'x'), ('web:r3', 'x'), ('app:r6', 'x'), ('store:r4', 'y'), ('store:r5', 'y')) t(unique_id, cluster_id)"
    )
    assign_stable_ids(con)
    ids = dict(
        con.execute("select source_record_id, customer_id from identity.source_records").fetchall()
    )
    assert (
        ids["r1"] == ids["r3"] == ids["r6"] == "A"
        and ids["r2"] not in {"A", "B"}
        and ids["r4"] == ids["r5"] == "D"
    )
    assert con.execute(
        "select old_customer_id, new_customer_id, reason from identity.id_history order by all"
    ).fetchall() == [("A", ids["r2"], "steward"), ("B", "A", "steward"), ("E", "D", "merged")]


def test_a_warehouse_from_before_decisions_still_gets_its_ids():
    con = connect(":memory:", {"as_of": date(2026, 6, 30)})
    con.execute(
        "create table identity.match_input as select 'web:r1' as unique_id, 'web' as source, "
        "'r1' as source_record_id, timestamp '2025-01-01' as registered_at"
    )
    con.execute("create table identity.clusters (unique_id varchar, cluster_id varchar)")
    assign_stable_ids(con)  # no identity.steward_decisions: none applied
    assert con.execute("select count(*) from identity.source_records").fetchall()[0][0] == 1


def test_run_refuses_an_unusable_decisions_file_before_starting(tmp_path, capsys):
    (tmp_path / "inbox").mkdir()
    path = write(
        tmp_path / "decisions.csv", "same_person,web,W1", header="decision,source_a,record_id_a"
    )
    assert (
        main(
            [
                "run",
                "--inbox",
                str(tmp_path / "inbox"),
                "--warehouse",
                str(tmp_path / "w" / "omniloyal.duckdb"),
                "--identity-overrides",
                str(path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        err
        == f"omniloyal run: {path}: missing column(s) source_b, record_id_b, reason; expected {', '.join(COLUMNS)}\n"
    )
    assert not (tmp_path / "w").exists()


# -- end to end -----------------------------------------------------------------------------

AS_OF = "2026-06-30"
IDS = "select source || ':' || source_record_id, customer_id from identity.source_records"
PURCHASE_ENTRIES = (
    "select entry_id, customer_id, points from loyalty.ledger where rule = 'purchase'"
)


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def steward_run(tmp_path_factory) -> dict:
    """A run by the model alone, then a run with two decisions against it."""
    tmp_path = tmp_path_factory.mktemp("stewards")
    generate_inbox(
        people=300,
        seed=23,
        out_dir=tmp_path / "inbox",
        end_date=date.fromisoformat(AS_OF),
        bad_row_rate=0,
    )
    warehouse = tmp_path / "w" / "omniloyal.duckdb"

    def run(*extra: str) -> None:
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
                    *extra,
                ]
            )
            == 0
        )

    run()
    before = dict(query(warehouse, IDS))
    # Two records the model linked directly, alone in their customer: declared two people.
    ((split_a, split_b),) = query(
        warehouse,
        """
        select e.unique_id_l, e.unique_id_r
        from identity.match_evidence e
        join identity.source_records s on s.source || ':' || s.source_record_id = e.unique_id_l
        where e.is_linked and s.records_in_customer = 2
        order by all limit 1
    """,
    )
    # Two customers with purchase points, one record each: declared one person.
    (merge_a, customer_a), (merge_b, customer_b) = query(
        warehouse,
        """
        select s.source || ':' || s.source_record_id, s.customer_id
        from identity.source_records s
        where s.records_in_customer = 1
          and s.customer_id in (select customer_id from loyalty.ledger where rule = 'purchase')
        order by s.customer_id limit 2
    """,
    )
    ledger_before = query(warehouse, PURCHASE_ENTRIES)
    decisions = write(
        tmp_path / "decisions.csv",
        "different_people,{},{},{},{},the customer says these are twins".format(
            *split_a.split(":", 1), *split_b.split(":", 1)
        ),
        "same_person,{},{},{},{},moved house and re-registered".format(
            *merge_a.split(":", 1), *merge_b.split(":", 1)
        ),
        "perhaps,web,W1,web,W2,unsure",
        "same_person,web,NO-SUCH-RECORD,{},{},typo".format(*merge_a.split(":", 1)),
    )
    run("--identity-overrides", str(decisions))
    return {
        "warehouse": warehouse,
        "before": before,
        "split": (split_a, split_b),
        "merge": (merge_a, merge_b),
        "merged_customers": (customer_a, customer_b),
        "ledger_before": ledger_before,
    }


@pytest.mark.e2e
@pytest.mark.slow  # two pipeline runs chained (make test-slow, CI)
def test_records_declared_different_people_get_different_customers(steward_run):
    after = dict(query(steward_run["warehouse"], IDS))
    a, b = steward_run["split"]
    assert steward_run["before"][a] == steward_run["before"][b]
    assert after[a] != after[b]
    old = steward_run["before"][a]
    assert (old, "steward") in query(
        steward_run["warehouse"], "select old_customer_id, reason from identity.id_history"
    )
    # The evidence shows the model's link, cut by the steward.
    (row,) = query(
        steward_run["warehouse"],
        f"""
        select link_source, is_linked, cut_by, match_probability is not null from identity.match_evidence
        where unique_id_l = '{min(a, b)}' and unique_id_r = '{max(a, b)}'
    """,
    )
    assert row == ("model", False, "steward", True)


@pytest.mark.e2e
@pytest.mark.slow  # two pipeline runs chained (make test-slow, CI)
def test_records_declared_one_person_share_a_customer_and_their_points(steward_run):
    warehouse = steward_run["warehouse"]
    after = dict(query(warehouse, IDS))
    a, b = steward_run["merge"]
    assert steward_run["before"][a] != steward_run["before"][b]
    assert after[a] == after[b]
    survivor = after[a]
    assert survivor in steward_run["merged_customers"]
    assert (
        query(
            warehouse,
            "select count(*) from identity.id_history where reason = 'steward' "
            f"and new_customer_id = '{survivor}'",
        )[0][0]
        == 1
    )
    # Every purchase entry of both former customers now sits under the survivor, points unchanged.
    moved = {
        (entry, points)
        for entry, customer, points in steward_run["ledger_before"]
        if customer in steward_run["merged_customers"]
    }
    now = {
        (entry, points)
        for entry, customer, points in query(warehouse, PURCHASE_ENTRIES)
        if customer == survivor
    }
    assert moved and moved == now
    assert query(
        warehouse,
        f"select count(*) from loyalty.ledger where customer_id = '{survivor}' and rule = 'enrolment'",
    ) == [(1,)]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert broken_invariants(con) == dict.fromkeys(INVARIANTS, 0)


@pytest.mark.e2e
@pytest.mark.slow  # two pipeline runs chained (make test-slow, CI)
def test_the_run_reports_every_decision(steward_run):
    assert query(
        steward_run["warehouse"],
        "select line, decision, status from identity.steward_decisions order by line",
    ) == [
        (2, "different_people", "applied"),
        (3, "same_person", "applied"),
        (4, None, "invalid: decision must be same_person or different_people"),
        (5, "same_person", "unknown record"),
    ]
    a, b = steward_run["merge"]
    (row,) = query(
        steward_run["warehouse"],
        f"""
        select link_source, is_linked, cut_by from identity.match_evidence
        where unique_id_l = '{min(a, b)}' and unique_id_r = '{max(a, b)}'
    """,
    )
    assert row == ("steward", True, None)
