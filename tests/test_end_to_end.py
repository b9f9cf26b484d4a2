"""The whole asset graph on a small generated inbox, through the `omniloyal` command line."""

import contextlib
import csv
import hashlib
import io
import shutil
import stat
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from workspaces import run_arguments

from assets.identity.evaluation import evaluate, hard_cases
from assets.loyalty.program import load_program
from assets.shared.catalog import personal_columns
from assets.shared.pseudonyms import pseudonym
from pipelines.cli import main
from pipelines.generator import generate_inbox

pytestmark = pytest.mark.e2e  # runs the pipeline on a generated inbox

AS_OF = "2026-06-30"
PUBLIC_TABLES = [
    "identity.source_records",
    "core.customers",
    "loyalty.ledger",
    "loyalty.balances",
    "marts.segments",
    "marts.kpis",
    "quality.quarantine",
    "raw.deliveries",
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(workspace: Path, inbox: Path | None = None) -> int:
    return main(run_arguments(workspace, AS_OF, inbox))


def query(workspace: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(workspace / "warehouse" / "omniloyal.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    workspace = tmp_path_factory.mktemp("e2e")
    generate_inbox(
        people=400,
        seed=20,
        out_dir=workspace / "inbox",
        truth_path=workspace / "truth.csv",
        end_date=date.fromisoformat(AS_OF),
        bad_row_rate=0.002,
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run(workspace) == 0
    (workspace / "run_output.txt").write_text(printed.getvalue())  # what the user read
    return workspace


@pytest.fixture
def own_workspace(workspace, tmp_path) -> Path:
    """A copy of the built workspace, for a test that runs the pipeline again or adds files:
    the shared one stays as the first run left it, whatever order the tests run in."""
    copy = tmp_path / "workspace"
    shutil.copytree(workspace, copy)
    return copy


def test_the_run_says_where_the_report_is_and_how_long_each_stage_took(workspace):
    printed = (workspace / "run_output.txt").read_text()
    assert f"report     {workspace / 'reports' / (AS_OF + '.html')}" in printed
    for model, status in query(workspace, "select model, status from marts.clv_fit"):
        assert (status != "fitted") == (f"  {model} " in printed), model  # an unused fit is said
    analytics = workspace / "warehouse" / "omniloyal_analytics.duckdb"
    assert f"analytics  {analytics}  (no personal data" in printed and analytics.is_file()
    assert (workspace / "reports" / f"{AS_OF}.html").is_file()
    stages = printed.split("seconds per stage\n")[1].split("\n\n")[0].splitlines()
    seconds = {
        line.split()[0]: float(line.split()[-1]) for line in stages if "all steps" not in line
    }
    assert list(seconds) == ["ingest", "staging", "identity", "core", "loyalty", "marts", "exports"]
    assert (
        all(s >= 0 for s in seconds.values()) and seconds["identity"] > 0
    )  # a fast stage may print 0.0
    total = float(stages[-1].split()[-1])
    run_seconds = float(printed.split("finished in ")[1].split()[0])
    # Each figure is printed rounded to 0.1 s: the sum of the rounded stages may differ from
    # the rounded total by half a tenth per figure.
    assert abs(total - sum(seconds.values())) <= 0.05 * (len(seconds) + 1) + 1e-9
    assert total <= run_seconds


def test_public_tables_exist_and_are_filled(workspace):
    for table in PUBLIC_TABLES:
        if table != "quality.quarantine":
            assert query(workspace, f"select count(*) from {table}")[0][0] > 0, table


def test_every_loaded_record_has_one_customer_and_nothing_was_lost(workspace):
    ((records, distinct, customers),) = query(
        workspace,
        "select count(*), count(distinct (source, source_record_id)), count(distinct customer_id) from identity.source_records",
    )
    assert records == distinct
    assert customers == query(workspace, "select count(*) from core.customers")[0][0]
    assert customers < records  # matching merged some records
    ((read, loaded, quarantined),) = query(
        workspace,
        "select sum(rows_read), sum(rows_loaded), sum(rows_quarantined) from raw.deliveries",
    )
    assert read == loaded + quarantined
    assert quarantined == query(workspace, "select count(*) from quality.quarantine")[0][0]


def test_matching_agrees_with_the_truth(workspace):
    accuracy = evaluate(workspace / "warehouse" / "omniloyal.duckdb", workspace / "truth.csv")
    # Every loaded record is evaluated; the truth also lists the few quarantined ones.
    assert (
        accuracy.records == query(workspace, "select count(*) from identity.source_records")[0][0]
    )
    # 400 people train a weaker model than the benchmark's 20k (F1 0.86 here against 0.97
    # there), but what it links must be right: merging two people leaks one's data to the other.
    assert accuracy.precision > 0.98, accuracy
    assert accuracy.f1 > 0.8, accuracy
    assert accuracy.bcubed_f1 > 0.92, accuracy


def test_ledger_reconciles_and_segments_cover_every_customer(workspace):
    ((ledger_points, balance_points),) = query(
        workspace,
        "select (select sum(points) from loyalty.ledger), (select sum(points_balance) from loyalty.balances)",
    )
    assert ledger_points == balance_points
    assert (
        query(workspace, "select count(*) from marts.segments")[0][0]
        == query(workspace, "select count(*) from core.customers")[0][0]
    )
    assert query(workspace, "select count(*) from loyalty.balances where tier is null")[0][0] == 0


def test_paid_memberships_in_generated_data(workspace):
    # The generator buys plans, renews some, refunds one fee and names one unknown plan.
    statuses = dict(query(workspace, "select status, count(*) from loyalty.memberships group by 1"))
    assert set(statuses) == {"active", "renewed", "ended", "refunded", "unknown_plan"}
    assert statuses["refunded"] == statuses["unknown_plan"] == 1
    # Fees are no purchases: none earns, none counts as spend.
    assert query(
        workspace,
        "select count(*), count(*) filter (where is_completed_purchase) from core.events "
        "where event_type = 'membership_fee'",
    )[0] == (sum(statuses.values()), 0)
    assert query(
        workspace,
        "select count(*) from loyalty.ledger join core.events using (source_event_id) "
        "where core.events.event_type = 'membership_fee'",
    ) == [(0,)]
    # Purchases inside a period earn the bonus, each inside one of its customer's periods.
    assert query(
        workspace,
        "select count(*) > 0, bool_and(exists (select 1 from loyalty.memberships m "
        "where m.customer_id = ledger.customer_id and ledger.occurred_at >= m.starts_at "
        "and ledger.occurred_at < m.ends_at)) from loyalty.ledger where rule = 'membership' "
        "and entry_type = 'bonus'",
    ) == [(True, True)]
    kpis = dict(
        query(
            workspace,
            "select kpi || '/' || dimension, value from marts.kpis where period = 'as_of' "
            "and kpi in ('paying_members', 'membership_renewal_rate', 'revenue_per_member_12m')",
        )
    )
    assert 1 <= kpis["paying_members/all"] <= statuses["active"]  # customers, not periods
    assert 0 < kpis["membership_renewal_rate/all"] < 1
    assert {"revenue_per_member_12m/paying", "revenue_per_member_12m/not paying"} <= set(kpis)


def test_partner_sales_are_matched_or_kept_unmatched_and_earn_in_the_ledger(workspace):
    # The generator writes members' e-mails and phones, strangers, rows without either,
    # household landlines and a partner the bundled program does not know.
    outcomes = dict(
        query(
            workspace,
            "select coalesce(reason, 'matched'), count(*) from loyalty.partner_transactions group by 1",
        )
    )
    assert set(outcomes) == {"matched", "no_match", "ambiguous", "no_contact", "unknown_partner"}
    assert outcomes["matched"] > sum(outcomes.values()) / 2
    ((sales, held),) = query(
        workspace,
        "select (select count(*) from loyalty.partner_transactions), (select count(*) from staging.partner_earnings)",
    )
    assert sales == held  # the generated sales all lie before the as-of date
    # Every matched sale is one ledger entry of its points; unmatched ones earn nothing.
    assert query(
        workspace,
        "select count(*), sum(points) from loyalty.ledger where rule = 'partner'",
    ) == query(
        workspace,
        "select count(*), sum(points) from loyalty.partner_transactions where is_matched and points > 0",
    )
    assert query(
        workspace,
        "select sum(value) from marts.kpis where kpi = 'partner_transactions' and period = 'as_of'",
    ) == [(float(sales),)]


def test_the_bundled_campaigns_reward_only_their_treated_members(workspace):
    import json

    # Both campaigns of pipelines/program.yaml lie inside the generated history (before AS_OF).
    arms = query(
        workspace,
        "select campaign, arm, count(*) from loyalty.campaign_assignments group by all order by all",
    )
    assert [(c, a) for c, a, n in arms if n > 0] == [
        ("Silver And Up Bonus", "holdout"),
        ("Silver And Up Bonus", "treatment"),
        ("Spring Double Points", "holdout"),
        ("Spring Double Points", "treatment"),
    ]
    # Rewards go to treated members only, some of them cut by the cap; the ledger holds them.
    ((held_out_rewarded, capped, rewarded, in_ledger),) = query(
        workspace,
        "select (select count(*) from loyalty.campaign_rewards join loyalty.campaign_assignments "
        "  using (campaign, customer_id) where arm = 'holdout'), "
        "(select count(*) from loyalty.campaign_rewards where limited_by = 'cap_per_member'), "
        "(select sum(points) from loyalty.campaign_rewards), "
        "(select sum(points) from loyalty.ledger where rule = 'campaign')",
    )
    assert held_out_rewarded == 0 and capped > 0 and rewarded > 0 and in_ledger == rewarded
    results = query(
        workspace,
        "select campaign, treated_members + holdout_members, points_issued from marts.campaign_results order by 1",
    )
    assert [(c, n, p) for c, n, p in results] == [
        (c, sum(k for c2, _, k in arms if c2 == c), p)
        for c, p in query(
            workspace,
            "select campaign, sum(points) from loyalty.campaign_rewards group by 1 order by 1",
        )
    ]
    # The export of a campaign holds none of its holdout.
    manifest = json.loads(
        (workspace / "exports" / AS_OF / "manifest.json").read_text(encoding="utf-8")
    )
    campaign_files = [f for f in manifest["files"] if f["segmentation"] == "campaign"]
    assert {f["segment"] for f in campaign_files} == {"Spring Double Points", "Silver And Up Bonus"}
    with (workspace / "exports" / AS_OF / "campaign_spring_double_points.csv").open(
        newline="", encoding="utf-8-sig"
    ) as handle:
        exported = [row["customer_id"] for row in csv.DictReader(handle)]
    held_out = {
        c
        for (c,) in query(
            workspace,
            "select customer_id from loyalty.campaign_assignments "
            "where campaign = 'Spring Double Points' and arm = 'holdout'",
        )
    }
    assert len(exported) > 0 and not held_out & set(exported)


def test_referrals_in_generated_data(workspace):
    # The generator's referrals (pipelines/generator.py, add_referrals) reach every outcome.
    outcomes = set(query(workspace, "select distinct status, reason from loyalty.referrals"))
    assert {
        ("rewarded", None),
        ("pending", "no_purchase_yet"),
        ("capped", "yearly_cap"),
        ("rejected", "same_customer"),
        ("rejected", "same_household"),  # the bundled program counts a household as self
        ("rejected", "already_customer"),
        ("rejected", "unknown_code"),
        ("rejected", "not_qualified_in_time"),
    } <= outcomes, outcomes
    # Each rewarded referral is one ledger entry per side, at the bundled program's points.
    rewarded = query(workspace, "select count(*) from loyalty.referrals where status = 'rewarded'")
    by_rule = query(
        workspace,
        "select rule, count(*), sum(points) from loyalty.ledger where rule like 'referral_%' group by rule order by rule",
    )
    referrals = load_program().referrals
    (n,) = rewarded[0]
    assert by_rule == [
        ("referral_referred", n, n * referrals.referred_points),
        ("referral_referrer", n, n * referrals.referrer_points),
    ]


def test_exports_written_with_manifest(workspace):
    import json

    folder = workspace / "exports" / AS_OF
    manifest = json.loads((folder / "manifest.json").read_text())
    (custom,) = query(workspace, "select count(distinct segment) from marts.custom_segment_members")
    rfm_and_lifecycle = query(
        workspace,
        "select count(distinct (segmentation, segment)) from marts.segment_memberships "
        "where segmentation in ('rfm', 'lifecycle')",
    )[0][0]
    # ...and one per campaign of the bundled program: both have started by AS_OF.
    assert len(manifest["files"]) == rfm_and_lifecycle + len(
        load_program().segmentation.custom
    ) + len(load_program().campaigns)
    assert (
        len(list(folder.glob("*.csv")))
        == len(list(folder.glob("*.parquet")))
        == len(manifest["files"])
    )
    # Every exported e-mail customer consented to e-mail; every push customer to push.
    for entry in manifest["files"]:
        ids = [
            row["customer_id"]
            for row in csv.DictReader(
                (folder / entry["files"]["csv"]["file"]).open(newline="", encoding="utf-8-sig")
            )
        ]
        assert len(ids) == entry["rows"]
        if ids:
            consent = "has_email_consent" if entry["channel"] == "email" else "has_push_consent"
            refused = query(
                workspace,
                f"select count(*) from core.customers where customer_id in "
                f"({', '.join(repr(i) for i in ids)}) and not {consent}",
            )[0][0]
            assert refused == 0, entry


def test_every_file_the_bundled_program_writes_reads_back(workspace):
    # As marketing's tools read them: each column once, the same columns and rows in the CSV
    # (pandas) and the Parquet file (pyarrow), as the manifest says.
    import json

    import pandas as pd

    folder = workspace / "exports" / AS_OF
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "Gold Nearly Platinum" in {entry["segment"] for entry in manifest["files"]}
    for entry in manifest["files"]:
        columns = entry["columns"]
        assert len(columns) == len(set(columns)), (entry["segment"], columns)
        frame = pd.read_csv(
            folder / entry["files"]["csv"]["file"], dtype=str, keep_default_na=False
        )
        assert list(frame.columns) == columns and len(frame) == entry["rows"], entry["segment"]
        table = pq.read_table(folder / entry["files"]["parquet"]["file"])
        assert table.column_names == columns and table.num_rows == entry["rows"], entry["segment"]
        for column in table.schema:
            if str(column.type) == "bool":  # written true/false in the CSV, never Python's True
                assert set(frame[column.name]) <= {"true", "false", ""}, (
                    entry["segment"],
                    column.name,
                )


def test_the_report_shows_the_kpis(workspace):
    from html.parser import HTMLParser

    class Figures(HTMLParser):
        found: dict = {}

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if "data-kpi" in attrs:
                value = attrs["data-value"]
                self.found[(attrs["data-kpi"], attrs["data-period"], attrs["data-dimension"])] = (
                    None if value == "None" else float(value)
                )

    page = (workspace / "reports" / f"{AS_OF}.html").read_text()
    assert (workspace / "reports" / "latest.html").read_text() == page
    parser = Figures()
    parser.feed(page)
    kpis = {
        (k, p, d): v
        for k, p, d, v in query(
            workspace, "select kpi, period, dimension, value from marts.kpis where period = 'as_of'"
        )
    }
    assert parser.found == kpis
    for title in (
        "Key figures",
        "Members per tier",
        "RFM segments",
        "RFM grid",
        "Active members per month",
        "Revenue per month",
        "Points issued, redeemed and expired per month",
        "Redemption and breakage",
        "Reachable audiences",
        "Match rate per source",
        "Data quality",
    ):
        assert title in page
    # No personal data: no e-mail address of any customer appears.
    emails = [
        row[0]
        for row in query(
            workspace, "select email from core.customers where email is not null limit 50"
        )
    ]
    assert not any(email in page for email in emails)


def test_the_report_renders_in_a_browser_and_the_kpi_history_holds_the_run(workspace, tmp_path):
    # The pipeline's own report, in chromium (tests/report_helpers.py): every chart shows.
    from report_helpers import assert_every_chart_shows, render_in_chromium

    measures, pixels, _ = render_in_chromium(
        workspace / "reports" / f"{AS_OF}.html", tmp_path, "report.png"
    )
    assert_every_chart_shows(measures, pixels)
    # The run recorded its snapshot KPIs, once, under its as-of date.
    assert query(
        workspace,
        "select as_of_on::varchar, kpi, dimension, value from marts.kpi_history order by all",
    ) == query(
        workspace,
        f"select '{AS_OF}', kpi, dimension, value from marts.kpis where period = 'as_of' order by all",
    )


def test_export_command_re_exports_one_segment(own_workspace, tmp_path, capsys):
    assert (
        main(
            [
                "export",
                "--segment",
                "Champions",
                "--format",
                "parquet",
                "--hashes",
                "--warehouse",
                str(own_workspace / "warehouse" / "omniloyal.duckdb"),
                "--exports",
                str(tmp_path),
            ]
        )
        == 0
    )
    written = tmp_path / AS_OF / "rfm_champions.parquet"
    table = pq.read_table(written)
    assert {"email_sha256", "phone_sha256", "phone_digits_sha256"} <= set(table.column_names)
    assert str(written) in capsys.readouterr().out
    assert not list(
        (tmp_path / AS_OF).glob(".*")
    )  # written beside and renamed: no partial file left
    assert (
        main(
            [
                "export",
                "--segment",
                "Nobody",
                "--warehouse",
                str(own_workspace / "warehouse" / "omniloyal.duckdb"),
                "--exports",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "no segment named 'Nobody'" in capsys.readouterr().err
    # While a run holds the warehouse (another process), an export refuses: the run's publish
    # would swap the exports folder under it.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from assets.shared.run_lock import RunLock; "
            "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(30)",
            str(own_workspace / "warehouse" / "omniloyal.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert (
            main(
                [
                    "export",
                    "--segment",
                    "Champions",
                    "--warehouse",
                    str(own_workspace / "warehouse" / "omniloyal.duckdb"),
                    "--exports",
                    str(tmp_path),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert err.startswith("omniloyal export: ") and f"pid {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()


def test_a_bad_file_fails_the_run_and_leaves_the_published_warehouse_unchanged(
    own_workspace, capsys
):
    (own_workspace / "inbox" / "web" / "orders_20260701.csv").write_text(
        "order_id,total_amount\nX1,5\n"
    )
    published = own_workspace / "warehouse" / "omniloyal.duckdb"
    before = sha256(published)
    assert run(own_workspace) == 1
    assert sha256(published) == before
    assert (
        "web/orders_20260701.csv: missing required column(s) account_id, ordered_at"
        in capsys.readouterr().err
    )


def test_dagster_definitions_validate():
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_every_table_matches_its_documentation(workspace):
    from assets.shared.catalog import documented_tables

    actual = {}
    for schema, table, column, data_type in query(
        workspace,
        "select table_schema, table_name, column_name, data_type from information_schema.columns "
        "where table_catalog = 'omniloyal' order by table_schema, table_name, ordinal_position",
    ):
        actual.setdefault(f"{schema}.{table}", []).append(
            (column, data_type.lower().replace(" ", ""))
        )
    documented = {
        table: [(c.name, c.type.replace(" ", "")) for c in columns]
        for table, columns in documented_tables().items()
    }
    assert actual == documented


def table_fingerprints(workspace: Path, skip: set[str]) -> dict[str, tuple]:
    from assets.shared.catalog import documented_tables

    return {
        table: query(workspace, f"select count(*), sum(hash(t)) from {table} t")[0]
        for table in documented_tables()
        if table not in skip
    }


@pytest.mark.slow  # a second pipeline run on its own workspace (make test-slow, CI)
def test_a_rerun_with_only_a_redelivered_copy_changes_nothing_and_spares_a_reader(
    own_workspace, capsys
):
    """One rerun, three promises (one pipeline run instead of three, for the suite's time):
    a file delivered again under a new name adds nothing, so every table stays as it was;
    the run says no new delivery came; a reader holding the published file keeps its
    consistent old snapshot while the run replaces the file."""
    original = next((own_workspace / "inbox" / "store").glob("transactions_*.csv"))
    copy = original.with_name("transactions_29991231.csv")
    # previous_source_records is the prior run's snapshot and match_runs logs every run's
    # identity path: they follow the runs, not the data.
    skip = {"raw.duplicate_deliveries", "identity.previous_source_records", "identity.match_runs"}
    before = table_fingerprints(own_workspace, skip=skip)
    shutil.copy(original, copy)
    reader = duckdb.connect(str(own_workspace / "warehouse" / "omniloyal.duckdb"), read_only=True)
    try:
        customers = reader.execute("select count(*) from core.customers").fetchall()[0][0]
        capsys.readouterr()
        assert run(own_workspace) == 0
        # The reader keeps its consistent (old) snapshot; the next reader sees the new file.
        assert reader.execute("select count(*) from core.customers").fetchall()[0][0] == customers
    finally:
        reader.close()
    printed = capsys.readouterr().out
    assert "no new delivery in the inbox" in printed
    assert f"report     {own_workspace / 'reports' / AS_OF}.html" in printed
    after = table_fingerprints(own_workspace, skip=skip)
    assert {t for t in before if before[t] != after.get(t)} == set()  # tables that changed
    assert query(own_workspace, "select file, duplicate_of from raw.duplicate_deliveries") == [
        ("store/transactions_29991231.csv", f"store/{original.name}")
    ]
    assert len(list((own_workspace / "warehouse" / "previous").glob("*.duckdb"))) >= 1


TWINS = "different people sharing last name and birth date"


def test_hard_cases_in_generated_data(workspace):
    cases = hard_cases(workspace / "warehouse" / "omniloyal.duckdb", workspace / "truth.csv")
    # Floors for 400 people, where a case has a few dozen pairs at most; the benchmark
    # reports the same figures at 20k and 100k people (docs/benchmarks.md). A case with no
    # pairs proves nothing: every floor asks for some.
    floors = {
        "different people sharing a phone": (20, lambda share: share <= 0.02),
        TWINS: (1, lambda share: share <= 0.02),
        "one person's two web accounts": (3, lambda share: share >= 0.75),
        "one person under a nickname and a given name": (10, lambda share: share >= 0.95),
    }
    assert set(cases) == set(floors)
    for case, (pairs, share) in cases.items():
        if case != TWINS:  # test_twins_in_generated_data
            least_pairs, holds = floors[case]
            assert pairs >= least_pairs and holds(share), (case, pairs, share)


def test_twins_in_generated_data(workspace):
    # Seed 20 generates twins at 400 people (seed 11 had none, so this could not fail).
    pairs, share = hard_cases(
        workspace / "warehouse" / "omniloyal.duckdb", workspace / "truth.csv"
    )[TWINS]
    assert pairs >= 1 and share <= 0.02, (pairs, share)  # twins kept apart


def test_a_saved_model_reproduces_the_run_without_training(workspace):
    from assets.identity.matching import match_records

    model = workspace / "reports" / "identity" / AS_OF / "splink_model.json"
    assert {p.name for p in model.parent.glob("*.html")} == {
        "match_weights.html",
        "m_u_parameters.html",
        "waterfall.html",
        "cluster_studio.html",
    }
    con = duckdb.connect(str(workspace / "warehouse" / "omniloyal.duckdb"), read_only=True)
    try:
        records = con.sql("select * from identity.match_input").to_arrow_table()
        published = con.execute(
            "select list(unique_id order by unique_id) from identity.clusters group by cluster_id"
        ).fetchall()
    finally:
        con.close()
    reused = match_records(records, model=model)
    con = duckdb.connect()
    con.register("clusters", reused.clusters)
    again = con.execute(
        "select list(unique_id order by unique_id) from clusters group by cluster_id"
    ).fetchall()
    assert sorted(again) == sorted(published)


def test_a_program_change_rebuilds_loyalty_and_marts_without_identity(workspace, tmp_path):
    from assets.loyalty.program import DEFAULT_PROGRAM
    from assets.shared.catalog import documented_tables

    warehouse = tmp_path / "warehouse" / "omniloyal.duckdb"
    warehouse.parent.mkdir()
    shutil.copy(workspace / "warehouse" / "omniloyal.duckdb", warehouse)
    program = tmp_path / "program.yaml"
    program.write_text(
        DEFAULT_PROGRAM.read_text().replace("enrolment_points: 250", "enrolment_points: 300")
    )
    upstream = [
        t for t in documented_tables() if t.split(".")[0] in ("raw", "staging", "identity", "core")
    ]

    def fingerprints():
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            tables = {
                t: con.execute(f"select count(*), sum(hash(t)) from {t} t").fetchall()[0]
                for t in upstream
            }
            enrolment = con.execute(
                "select count(*), sum(points) from loyalty.ledger where rule = 'enrolment'"
            ).fetchall()[0]
            return tables, enrolment
        finally:
            con.close()

    before, (enrolments, points) = fingerprints()
    assert points == 250 * enrolments
    assert (
        main(
            [
                "run",
                "--job",
                "loyalty_and_marts",
                "--inbox",
                str(workspace / "inbox"),
                "--warehouse",
                str(warehouse),
                "--exports",
                str(tmp_path / "exports"),
                "--reports",
                str(tmp_path / "reports"),
                "--as-of",
                AS_OF,
                "--program",
                str(program),
            ]
        )
        == 0
    )
    after, enrolment_after = fingerprints()
    assert after == before  # identity, profiles and everything upstream untouched
    assert enrolment_after == (enrolments, 300 * enrolments)
    assert not (tmp_path / "reports" / "identity").exists()  # the Splink step did not run
    assert (tmp_path / "reports" / f"{AS_OF}.html").exists()


# The published analytics warehouse of the same run: no personal column, no personal value,
# and the same counts and joins as the main warehouse.
@pytest.fixture(scope="module")
def both(workspace):
    """One connection: the published main file as `main_file`, the analytics file as `analytics`."""
    folder = workspace / "warehouse"
    con = duckdb.connect()
    con.execute(f"attach '{folder / 'omniloyal.duckdb'}' as main_file (read_only)")
    con.execute(f"attach '{folder / 'omniloyal_analytics.duckdb'}' as analytics (read_only)")
    yield con
    con.close()


def one(con, sql: str):
    return con.execute(sql).fetchall()[0][0]


def test_no_column_flagged_personal_reaches_the_analytics_file(both):
    tables = both.execute(
        "select schema_name || '.' || table_name from duckdb_tables() where database_name = 'analytics'"
    ).fetchall()
    schemas = {table.split(".")[0] for (table,) in tables}
    assert schemas == {"staging", "identity", "core", "loyalty", "marts", "quality"}
    hashed = 0
    for (table,) in tables:
        schema, name = table.split(".")
        columns = {
            c
            for (c,) in both.execute(
                "select column_name from duckdb_columns() where database_name = 'analytics' "
                "and schema_name = ? and table_name = ?",
                [schema, name],
            ).fetchall()
        }
        assert not columns & personal_columns(table), table
        hashed += len({c + "_hash" for c in personal_columns(table)} & columns)
    assert hashed > 20
    assert one(both, "select count(*) from analytics.core.customers") == one(
        both, "select count(*) from main_file.core.customers"
    )


def test_no_personal_value_of_the_customers_is_in_any_text_column(both):
    both.execute(
        """create temp table personal as
        select distinct v from main_file.core.customers,
            unnest([email, phone_e164, street, postcode, first_name || ' ' || last_name]) as t(v)
        where v is not null"""
    )
    assert one(both, "select count(*) from personal") > 1000
    text_columns = both.execute(
        "select schema_name, table_name, column_name from duckdb_columns() "
        "where database_name = 'analytics' and data_type = 'VARCHAR'"
    ).fetchall()
    assert len(text_columns) > 100
    for schema, table, column in text_columns:
        found = one(
            both,
            f'select count(*) from analytics.{schema}.{table} where "{column}" in (select v from personal)',
        )
        assert found == 0, f"{schema}.{table}.{column}"


def test_counts_and_joins_agree_with_the_main_file(both, workspace):  # noqa: F811
    for main_sql, analytics_sql in [
        (
            "select count(distinct customer_id) from main_file.core.customers",
            "select count(distinct customer_id) from analytics.core.customers",
        ),
        (
            "select count(distinct email) from main_file.core.customers",
            "select count(distinct email_hash) from analytics.core.customers",
        ),
        (  # profiles to the web accounts carrying their e-mail
            "select count(*) from main_file.core.customers c join main_file.staging.web_customers w using (email)",
            "select count(*) from analytics.core.customers c join analytics.staging.web_customers w using (email_hash)",
        ),
        (
            "select sum(points_balance) from main_file.loyalty.balances join main_file.core.customers using (customer_id) where email is not null",
            "select sum(points_balance) from analytics.loyalty.balances join analytics.core.customers using (customer_id) where email_hash is not null",
        ),
    ]:
        assert one(both, main_sql) == one(both, analytics_sql) > 0, analytics_sql
    salt_file = workspace / "warehouse" / ".pseudonym_salt"
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    salt = salt_file.read_text().strip()
    customer, email = both.execute(
        "select customer_id, email from main_file.core.customers where email is not null order by customer_id limit 1"
    ).fetchall()[0]
    assert one(
        both,
        f"select email_hash from analytics.core.customers where customer_id = '{customer}'",
    ) == pseudonym(email, salt)
    assert (
        salt.encode() not in (workspace / "warehouse" / "omniloyal_analytics.duckdb").read_bytes()
    )
