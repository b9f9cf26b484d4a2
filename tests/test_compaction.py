"""A build from which personal data was deleted is rewritten before it is published: DuckDB
keeps deleted rows' bytes in its free blocks, so a query-level check alone would pass over them."""

import duckdb

from assets.shared.warehouse import Warehouse


def _build_with_a_deleted_person(warehouse: Warehouse, run_id: str) -> None:
    path = warehouse.build_path(run_id)
    path.parent.mkdir(parents=True)
    con = duckdb.connect(str(path))
    # Stored as written (no string compression), so the test can look for the bytes; the
    # pipeline's files compress them, which hides them from a byte search but not from a reader.
    con.execute("pragma force_compression = 'uncompressed'")
    con.execute(
        "create schema core; create table core.customers as "
        "select 'C' || range as customer_id, 'person' || range || '@example.org' as email from range(20000)"
    )
    con.execute("comment on column core.customers.email is 'freshest e-mail'")
    con.execute("checkpoint")
    con.execute("delete from core.customers where customer_id = 'C12345'")
    con.execute("checkpoint")
    con.close()


def test_a_build_asked_to_be_compacted_loses_the_deleted_bytes_and_keeps_the_rest(tmp_path):
    warehouse = Warehouse(tmp_path / "omniloyal.duckdb")
    _build_with_a_deleted_person(warehouse, "run1")
    build = warehouse.build_path("run1")
    assert b"person12345@" in build.read_bytes()  # deleted, yet still on disk

    assert warehouse.compact_build("run1") is False  # nobody asked: untouched
    assert b"person12345@" in build.read_bytes()

    warehouse.request_compaction("run1")
    assert warehouse.compact_build("run1") is True
    assert b"person12345@" not in build.read_bytes()
    assert not warehouse.compaction_marker("run1").exists()
    with duckdb.connect(str(build), read_only=True) as con:
        assert con.execute("select count(*) from core.customers").fetchall() == [(19999,)]
        assert con.execute(
            "select comment from duckdb_columns() where table_name = 'customers' and column_name = 'email'"
        ).fetchall() == [("freshest e-mail",)]


def test_a_failed_run_s_marker_goes_with_its_build(tmp_path):
    warehouse = Warehouse(tmp_path / "omniloyal.duckdb")
    warehouse.request_compaction("gone")  # its build was never written, or already removed
    assert warehouse.compaction_marker("gone") in warehouse.clean_leftovers()
