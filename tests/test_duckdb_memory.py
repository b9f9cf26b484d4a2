"""DuckDB's memory limit and spill folder come from the settings: a run's connections hold at
most duckdb_memory_limit and finish what needs more by spilling to duckdb_temp_dir."""

import duckdb
import pytest

from assets.shared.defaults import SettingsError, check_settings
from assets.shared.settings import PipelineSettings

# Sorting 3M strings of ~92 bytes needs about twice the 150 MB below: only spilling finishes it.
BIGGER_THAN_THE_LIMIT = (
    "select count(*), max(v) from (select md5(range::varchar) || repeat('x', 60) as v "
    "from range(3000000) order by v)"
)


def test_the_build_connection_holds_the_limit_and_spills_to_the_folder(tmp_path):
    spill = tmp_path / "spill"
    settings = PipelineSettings(
        warehouse_path=str(tmp_path / "w" / "omniloyal.duckdb"),
        inbox_dir=str(tmp_path),
        duckdb_memory_limit="150MB",
        duckdb_temp_dir=str(spill),
    )
    with settings.build("run1") as con:
        assert con.execute(
            "select current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchall() == [("143.0 MiB", str(spill))]  # DuckDB shows 150 MB in MiB
        # Each thread holds buffers of its own: two, as on the machine this was sized on.
        con.execute("set threads = 2")
        ((rows, _),) = con.execute(BIGGER_THAN_THE_LIMIT).fetchall()
        assert rows == 3_000_000
    # The same query under the same limit with nowhere to spill runs out of memory: the limit binds.
    with duckdb.connect(
        config={"memory_limit": "150MB", "temp_directory": "", "threads": 2}
    ) as bare:
        with pytest.raises(duckdb.OutOfMemoryException):
            bare.execute(BIGGER_THAN_THE_LIMIT).fetchall()


def test_without_a_folder_duckdb_spills_beside_the_build(tmp_path):
    settings = PipelineSettings(
        warehouse_path=str(tmp_path / "w" / "omniloyal.duckdb"), duckdb_memory_limit="1GB"
    )
    with settings.build("run1") as con:
        ((limit, folder),) = con.execute(
            "select current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchall()
    assert limit == "953.6 MiB"
    assert folder == str(settings.warehouse().build_path("run1")) + ".tmp"


@pytest.mark.parametrize("value", ["4 elephants", "-1GB", "0GB", "GB", ""])
def test_a_bad_memory_limit_is_refused_in_one_line(value):
    with pytest.raises(SettingsError) as raised:
        check_settings({"duckdb_memory_limit": value})
    assert str(raised.value) == (
        f"setting duckdb_memory_limit must be a size such as 512MB or 4GB, got {value!r}"
    )


@pytest.mark.parametrize("value", ["512MB", "4GB", "1.5GiB", "2 gb"])
def test_sizes_duckdb_reads_are_accepted(value):
    check_settings({"duckdb_memory_limit": value})
