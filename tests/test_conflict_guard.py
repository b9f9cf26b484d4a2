"""The conflict guard: shared identifiers never chain different people together."""

from datetime import date

import duckdb
from splink import DuckDBAPI

from assets.identity.conflict_guard import (
    GuardRule,
    guard_against_conflicts,
    measure_rule,
    use_rule,
)

# unique_id, first_name_key, canonical_first_name, birth_on (last names added below)
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
    con.execute(
        "create table records (unique_id varchar, first_name_key varchar, canonical_first_name varchar, birth_on date)"
    )
    con.executemany("insert into records values (?, ?, ?, ?)", RECORDS)
    con.execute("alter table records add column last_name_key varchar default 'smith'")
    con.execute(
        "create table links (unique_id_l varchar, unique_id_r varchar, match_weight double)"
    )
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


def _guard(records, links, must_link=(), cannot_link=(), rule=None):
    con = duckdb.connect()
    con.execute(
        "create table records (unique_id varchar, first_name_key varchar, canonical_first_name varchar, "
        "last_name_key varchar, birth_on date)"
    )
    con.executemany("insert into records values (?, ?, ?, ?, ?)", records)
    con.execute(
        "create table links (unique_id_l varchar, unique_id_r varchar, match_weight double)"
    )
    con.executemany("insert into links values (?, ?, ?)", links)
    con.execute("create table scored as select * from links")
    con.execute("create table must_link (unique_id_l varchar, unique_id_r varchar)")
    if must_link:
        con.executemany("insert into must_link values (?, ?)", must_link)
    con.execute("create table cannot_link (unique_id_l varchar, unique_id_r varchar)")
    if cannot_link:
        con.executemany("insert into cannot_link values (?, ?)", cannot_link)
    use_rule(con, rule or GuardRule())
    clusters = guard_against_conflicts(con, DuckDBAPI(connection=con))
    return sorted(
        g[0]
        for g in con.execute(
            f"select list(unique_id order by unique_id) from {clusters} group by cluster_id"
        ).fetchall()
    )


def test_swapped_names_and_a_swapped_day_and_month_are_not_a_conflict():
    records = [
        ("a:1", "caitlin", "caitlin", "mason", date(1980, 3, 7)),
        (
            "b:1",
            "mason",
            "mason",
            "caitlin",
            date(1980, 7, 3),
        ),  # names swapped, day and month swapped
        ("c:1", "shephsrdson", "shephsrdson", "jacob", date(1990, 1, 21)),
        (
            "d:1",
            "jacob",
            "jacob",
            "shepherdson",
            date(1990, 1, 12),
        ),  # swapped with a typo; two digits swapped
    ]
    assert _guard(records, [("a:1", "b:1", 20.0), ("c:1", "d:1", 20.0)]) == [
        ["a:1", "b:1"],
        ["c:1", "d:1"],
    ]


def test_stewards_decide_over_the_rule_and_the_score():
    records = [
        ("t:emma", "emma", "emma", "jones", date(1990, 5, 1)),
        ("t:sophie", "sophie", "sophie", "jones", date(1990, 5, 1)),
        ("p:one", "peter", "peter", "jones", date(1970, 1, 1)),
        ("p:two", "peter", "peter", "jones", date(1970, 1, 1)),
    ]
    links = [("t:emma", "t:sophie", 25.0), ("p:one", "p:two", 30.0)]
    # The rule keeps the twins apart and the model links the Peters...
    assert _guard(records, links) == [["p:one", "p:two"], ["t:emma"], ["t:sophie"]]
    # ...until a steward says the twins' records are one person and the Peters are two.
    decided = _guard(
        records, links, must_link=[("t:emma", "t:sophie")], cannot_link=[("p:one", "p:two")]
    )
    assert decided == [["p:one"], ["p:two"], ["t:emma", "t:sophie"]]


def _people_sharing_phones(
    pairs: int, replaced_first_names: int, other_birth_dates: int
) -> duckdb.DuckDBPyConnection:
    """`pairs` pairs of records, each pair sharing a phone, a surname and (but for
    `other_birth_dates` pairs) a birth date; in `replaced_first_names` pairs the second record's
    first name is another name, in the others it is the same."""
    con = duckdb.connect()
    con.execute(
        """
        create table records as
        select
            'r' || i || ':' || side as unique_id,
            case when side = 2 and i < ? then 'zebedee' else 'anna' end as first_name_key,
            case when side = 2 and i < ? then 'zebedee' else 'anna' end as canonical_first_name,
            'lee' || i as last_name_key,
            case when side = 2 and i >= ? and i < ? + ? then date '1950-01-01' else date '1980-01-01' + i::integer end as birth_on,
            '+4470000' || lpad(i::varchar, 5, '0') as phone_e164,
            null::varchar as email_key
        from range(?) as t(i), (values (1), (2)) as s(side)
        """,
        [
            replaced_first_names,
            replaced_first_names,
            pairs - other_birth_dates,
            pairs - other_birth_dates,
            other_birth_dates,
            pairs,
        ],
    )
    return con


def test_the_guard_enforces_a_rule_only_where_the_data_backs_it():
    # A twin among 50 evidently-same pairs (2%): the first-name rule holds.
    rule = measure_rule(_people_sharing_phones(50, replaced_first_names=1, other_birth_dates=0))
    assert rule.first_names and rule.birth_dates
    first_names = rule.evidence["first_names"]
    assert (first_names["evident_identifiers"], first_names["contradicted_identifiers"]) == (50, 1)
    assert first_names["share_lower_bound"] < 0.02 and first_names["enforced"]
    # The 49 pairs with the same first name and surname all agree on the birth date.
    assert (
        rule.evidence["birth_dates"]["evident_pairs"],
        rule.evidence["birth_dates"]["contradicted_pairs"],
    ) == (49, 0)
    # Duplicates with a replaced first name in 6 of 40 pairs (15%): the rule would cut them.
    rule = measure_rule(_people_sharing_phones(40, replaced_first_names=6, other_birth_dates=0))
    assert not rule.first_names and rule.birth_dates
    # Rewritten birth dates in 5 of 40 pairs (the 35 others agree): the birth-date rule goes.
    rule = measure_rule(_people_sharing_phones(40, replaced_first_names=0, other_birth_dates=5))
    birth_dates = rule.evidence["birth_dates"]
    assert (birth_dates["evident_identifiers"], birth_dates["contradicted_identifiers"]) == (40, 5)
    assert birth_dates["share_lower_bound"] > 0.02 and not birth_dates["enforced"]
    assert rule.first_names and not rule.birth_dates
    # Too little evidence to judge (20 pairs): both rules hold, precision first.
    rule = measure_rule(_people_sharing_phones(20, replaced_first_names=10, other_birth_dates=5))
    assert rule.first_names and rule.birth_dates


def test_one_twin_pair_in_a_small_data_set_does_not_switch_the_rule_off():
    # Records of two twins on one household phone: four record pairs, one phone. Among 60
    # evidently-same identifiers that is 1.7%, with a lower bound far under 2%.
    con = _people_sharing_phones(60, replaced_first_names=0, other_birth_dates=0)
    con.execute(
        """
        insert into records
        select 'twin' || i || ':' || side, case when i = 0 then 'zoe' else 'yasmin' end,
               case when i = 0 then 'zoe' else 'yasmin' end, 'twinn', date '2001-02-03', '+447999000000', null
        from range(2) as t(i), (values (1), (2)) as s(side)
        """
    )
    rule = measure_rule(con)
    first_names = rule.evidence["first_names"]
    assert first_names["contradicted_pairs"] == 4 and first_names["contradicted_identifiers"] == 1
    assert rule.first_names


def test_a_rule_not_in_force_does_not_cut():
    records = [
        ("a:1", "anna", "anna", "lee", date(1980, 1, 1)),
        ("b:1", "zebedee", "zebedee", "lee", date(1980, 1, 1)),  # a replaced first name
        ("c:1", "carl", "carl", "moss", date(1970, 1, 1)),
        ("d:1", "carl", "carl", "moss", date(1944, 9, 9)),  # a rewritten birth date
    ]
    links = [("a:1", "b:1", 20.0), ("c:1", "d:1", 20.0)]
    assert _guard(records, links, rule=GuardRule(first_names=False)) == [
        ["a:1", "b:1"],
        ["c:1"],
        ["d:1"],
    ]
    assert _guard(records, links, rule=GuardRule(birth_dates=False)) == [
        ["a:1"],
        ["b:1"],
        ["c:1", "d:1"],
    ]
    assert _guard(records, links) == [["a:1"], ["b:1"], ["c:1"], ["d:1"]]
