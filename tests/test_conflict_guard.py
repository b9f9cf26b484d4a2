"""The conflict guard: shared identifiers never chain different people together."""

from datetime import date

import duckdb
from splink import DuckDBAPI

from assets.matching import guard_against_conflicts

# unique_id, first_name_key, canonical_first_name, birth_on
RECORDS = [
    ("twin:emma", "emma", "emma", date(1990, 5, 1)),
    ("twin:sophie", "sophie", "sophie", date(1990, 5, 1)),
    ("mum:anne", "anne", "anne", date(1960, 2, 2)),
    ("son:tom", "tom", "thomas", date(1992, 3, 3)),
    ("web:bob", "bob", "robert", date(1970, 7, 7)),
    ("store:robert", "robert", "robert", date(1970, 7, 7)),
    ("app:pte", "pte", "pte", None),
    ("web:peter", "peter", "peter", date(1980, 1, 1)),
    ("web:jo1", "joanna", "joanna", date(1985, 8, 8)),
    ("web:jo2", "joanna", "joanna", date(1985, 8, 8)),
    ("chain:ann", "ann", "ann", date(1950, 1, 1)),
    ("chain:nobody", None, None, None),
    ("chain:zoe", "zoe", "zoe", date(1999, 9, 9)),
    # One person's four records (a, b, c) and a relative (d) who shares c's phone.
    ("fam:a", "kate", "katherine", date(1981, 4, 4)),
    ("fam:b", "katherine", "katherine", None),
    ("fam:c", "kathy", "katherine", None),
    ("fam:d", "lily", "lily", date(2010, 6, 6)),
]
# unique_id_l, unique_id_r, match_weight
LINKS = [
    ("twin:emma", "twin:sophie", 25.0),  # same surname, birth date, phone, address
    ("mum:anne", "son:tom", 20.0),  # a household phone and address
    ("store:robert", "web:bob", 20.0),  # a nickname
    ("app:pte", "web:peter", 20.0),  # a typo
    ("web:jo1", "web:jo2", 25.0),  # two web accounts of one person
    ("chain:ann", "chain:nobody", 9.0),  # a sparse record joins two people...
    ("chain:nobody", "chain:zoe", 17.0),  # ...who conflict on birth date and name
    ("fam:a", "fam:b", 30.0),
    ("fam:b", "fam:c", 25.0),
    ("fam:c", "fam:d", 5.0),  # the shared phone; a and d conflict
]


def test_conflicting_records_are_never_in_one_cluster():
    con = duckdb.connect()
    con.execute("create table records (unique_id varchar, first_name_key varchar, canonical_first_name varchar, birth_on date)")
    con.executemany("insert into records values (?, ?, ?, ?)", RECORDS)
    con.execute("create table links (unique_id_l varchar, unique_id_r varchar, match_weight double)")
    con.executemany("insert into links values (?, ?, ?)", LINKS)
    con.execute("create table scored as select * from links")  # every scored pair, before the guard
    clusters = guard_against_conflicts(con, DuckDBAPI(connection=con))
    groups = con.execute(
        f"select list(unique_id order by unique_id) from {clusters} group by cluster_id order by 1"
    ).fetchall()
    assert sorted(g[0] for g in groups) == [
        ["app:pte", "web:peter"],
        ["chain:ann"],
        ["chain:nobody", "chain:zoe"],  # the weaker link of the chain gave way
        ["fam:a", "fam:b", "fam:c"],  # rebuilt strongest link first; d would bring a conflict
        ["fam:d"],
        ["mum:anne"],
        ["son:tom"],
        ["store:robert", "web:bob"],
        ["twin:emma"],
        ["twin:sophie"],
        ["web:jo1", "web:jo2"],
    ]
