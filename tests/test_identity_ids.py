"""Stable customer ids: merges keep the older id, splits leave it with the larger part."""

from datetime import date

from assets.identity.stable_ids import assign_stable_ids
from assets.shared.warehouse import connect


def setup(con, clusters: dict[str, str]) -> None:
    con.execute(
        "create or replace table identity.match_input as select * from (values "
        "('web:r1', 'web', 'r1', timestamp '2025-01-01'), ('web:r2', 'web', 'r2', timestamp '2025-01-02'), "
        "('app:r3', 'app', 'r3', timestamp '2025-01-03'), ('store:r4', 'store', 'r4', timestamp '2025-01-04'), "
        "('store:r5', 'store', 'r5', timestamp '2025-01-05'), ('store:r6', 'store', 'r6', timestamp '2025-01-06'), "
        "('web:r7', 'web', 'r7', timestamp '2025-01-07')) t(unique_id, source, source_record_id, registered_at)"
    )
    con.execute(
        "create or replace table identity.clusters as select * from (values "
        + ", ".join(f"('{uid}', '{cluster}')" for uid, cluster in clusters.items())
        + ") t(unique_id, cluster_id)"
    )


def test_merges_splits_and_new_customers():
    con = connect(":memory:", {"as_of": date(2026, 3, 1)})
    # The previous run: A = {r1, r2} since January, B = {r3} since February, D = {r4, r5, r6}.
    con.execute(
        "create table identity.source_records as select * from (values "
        "('web', 'r1', 'A', date '2026-01-01', 2), ('web', 'r2', 'A', date '2026-01-01', 2), "
        "('app', 'r3', 'B', date '2026-02-01', 1), ('store', 'r4', 'D', date '2026-01-15', 3), "
        "('store', 'r5', 'D', date '2026-01-15', 3), ('store', 'r6', 'D', date '2026-01-15', 3)) "
        "t(source, source_record_id, customer_id, id_assigned_on, records_in_customer)"
    )
    # Now r3 joins A's records (a merge), r6 leaves D (a split), r7 is new.
    setup(con, {"web:r1": "x", "web:r2": "x", "app:r3": "x", "store:r4": "y", "store:r5": "y"})
    assign_stable_ids(con)
    ids = dict(
        con.execute("select source_record_id, customer_id from identity.source_records").fetchall()
    )
    assert ids["r1"] == ids["r2"] == ids["r3"] == "A"  # the older of A and B survives
    assert ids["r4"] == ids["r5"] == "D"  # the larger part keeps D
    assert ids["r6"] not in {"A", "B", "D"} and ids["r7"] not in {"A", "B", "D", ids["r6"]}
    assert con.execute(
        "select old_customer_id, new_customer_id, reason, records_moved, changed_on from identity.id_history order by 1"
    ).fetchall() == [
        ("B", "A", "merged", 1, date(2026, 3, 1)),
        ("D", ids["r6"], "split", 1, date(2026, 3, 1)),
    ]
    since = dict(
        con.execute(
            "select customer_id, any_value(id_assigned_on) from identity.source_records group by 1"
        ).fetchall()
    )
    assert since["A"] == date(2026, 1, 1) and since[ids["r7"]] == date(2026, 3, 1)

    # A rerun on the same clusters changes no id and adds no history.
    before = con.execute("select * from identity.source_records order by all").fetchall()
    assign_stable_ids(con)
    assert con.execute("select * from identity.source_records order by all").fetchall() == before
    assert con.execute("select count(*) from identity.id_history").fetchall()[0][0] == 2


def test_first_run_derives_ids_from_the_earliest_registered_record():
    con = connect(":memory:", {"as_of": date(2026, 3, 1)})
    setup(con, {"web:r1": "x", "app:r3": "x"})
    assign_stable_ids(con)
    rows = dict(
        con.execute("select source_record_id, customer_id from identity.source_records").fetchall()
    )
    assert rows["r1"] == rows["r3"]
    assert len(set(rows.values())) == 6  # {r1, r3} and five single records
    assert con.execute("select count(*) from identity.id_history").fetchall()[0][0] == 0
