"""identity_engine: the same Splink model on DuckDB and on Spark gives the same people.

The tests marked `spark` run Splink on Spark in local mode (make test-spark: pyspark is the
optional extra, not in `make install`; a few minutes on two cores). The others check the
settings and the engine-neutral pieces without Spark.
"""

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from test_matching_robustness import pairwise_f1, prepare

from assets.identity.engines import EngineError, in_dialect, scoring_engine, spark_memory
from assets.identity.matching import match_records, splink_settings
from assets.shared import defaults
from assets.shared.defaults import SettingsError, check_settings, parsed
from pipelines.cli import main

# --- settings and engine-neutral pieces (no Spark) ------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        (
            "identity_engine",
            "postgres",
            "identity_engine (from OMNILOYAL_IDENTITY_ENGINE) must be duckdb or spark, got 'postgres'",
        ),
        ("identity_engine", "Spark", "must be duckdb or spark, got 'Spark'"),
        (
            "spark_master",
            "localhost",
            "spark_master (from OMNILOYAL_SPARK_MASTER) must be a Spark master: local[*]",
        ),
        ("spark_master", "local[two]", "must be a Spark master"),
    ],
)
def test_a_bad_engine_setting_is_one_line_before_the_run(
    monkeypatch, capsys, tmp_path, setting, value, expected
):
    monkeypatch.setenv(defaults.DEFAULTS[setting][0], value)
    assert main(["run", "--inbox", str(tmp_path), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.startswith("omniloyal run: setting ") and err.count("\n") == 1
    assert not (tmp_path / "w.duckdb").exists()


def test_the_engine_flags_are_checked_like_the_environment(capsys, tmp_path):
    code = main(
        ["run", "--inbox", str(tmp_path), "--identity-engine", "spork", "--spark-master", "x"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "identity_engine must be duckdb or spark, got 'spork'" in err
    assert "spark_master must be a Spark master" in err


def test_spark_without_pyspark_or_java_is_named_before_the_run(monkeypatch, capsys, tmp_path):
    real_find_spec = defaults.importlib.util.find_spec
    monkeypatch.setattr(
        defaults.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pyspark" else real_find_spec(name, *a),
    )
    assert main(["run", "--inbox", str(tmp_path), "--identity-engine", "spark"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "omniloyal run: setting identity_engine is spark, but pyspark is not installed: "
        "make install-spark (or pip install '.[spark]')\n"
    )
    monkeypatch.setattr(defaults.importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(defaults.shutil, "which", lambda name: None)
    with pytest.raises(SettingsError, match="needs Java 17 or later: none found"):
        check_settings({"identity_engine": "spark"})


def test_good_engine_values_and_defaults():
    assert parsed("identity_engine", "duckdb") == "duckdb"
    for master in ("local[*]", "local[2]", "local", "local[4,2]", "spark://h:7077", "yarn"):
        assert parsed("spark_master", master) == master
    assert defaults.env_default("identity_engine") in ("duckdb", "spark")
    assert defaults.DEFAULTS["identity_engine"][1] == "duckdb"
    assert defaults.DEFAULTS["spark_master"][1] == "local[*]"


def test_spark_memory_is_the_duckdb_size_in_mebibytes():
    assert spark_memory("4GB") == "3814m"  # 4e9 bytes
    assert spark_memory("2GiB") == "2048m"
    assert spark_memory("1.5GiB") == "1536m"
    assert spark_memory("100MB") == "512m"  # Spark's driver needs at least this much


def test_a_model_moves_between_dialects_with_its_numbers():
    declared = splink_settings()
    model = declared.create_settings_dict("duckdb")
    for i, comparison in enumerate(model["comparisons"]):
        for j, level in enumerate(comparison["comparison_levels"]):
            if not level.get("is_null_level"):
                level["m_probability"], level["u_probability"] = 0.5 / (j + 1), 0.01 * (i + 1)
    model["probability_two_random_records_match"] = 0.0042
    spark = in_dialect(model, declared, "spark", source="test")
    # Spark's SQL (backticks, not DuckDB's double quotes), the same numbers.
    condition = spark["comparisons"][2]["comparison_levels"][1]["sql_condition"]
    assert condition == "`email_key_l` = `email_key_r` AND NOT is_shared_email_l"
    back = in_dialect(spark, declared, "duckdb", source="test")
    assert back["comparisons"] == model["comparisons"]
    assert back["probability_two_random_records_match"] == 0.0042


def test_a_model_of_another_shape_is_refused_not_misread():
    declared = splink_settings()
    model = declared.create_settings_dict("duckdb")
    model["comparisons"][0]["comparison_levels"].pop(3)
    with pytest.raises(EngineError, match=r"identity_model old.json: its comparisons are not"):
        in_dialect(model, declared, "spark", source="old.json")


def test_an_unknown_engine_is_refused_by_the_matcher():
    with pytest.raises(EngineError, match="identity_engine must be one of duckdb, spark"):
        with scoring_engine("oracle", duckdb.connect(), Path("."), splink_settings(), "1GB", ""):
            pass


# --- both engines on one generated inbox (Spark in local mode) ------------------------------


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> dict:
    """identity.match_input of 600 generated people (about 1300 records), its truth, and the
    DuckDB engine's result (trained) with its model saved as the pipeline saves it."""
    folder = tmp_path_factory.mktemp("engines")
    records, truth = prepare(folder, people=600, seed=2024)
    result = match_records(records, memory_limit="1GB")
    model = folder / "duckdb_model.json"
    model.write_text(json.dumps(result.model_json, indent=2, sort_keys=True), encoding="utf-8")
    return {"folder": folder, "records": records, "truth": truth, "duckdb": result, "model": model}


def partition(clusters: pa.Table) -> set[frozenset[str]]:
    """The clusters as sets of records, whatever their ids."""
    members: dict[str, set[str]] = {}
    for uid, cluster in zip(clusters["unique_id"].to_pylist(), clusters["cluster_id"].to_pylist()):
        members.setdefault(cluster, set()).add(uid)
    return {frozenset(m) for m in members.values()}


@pytest.mark.spark
def test_the_same_model_gives_the_same_clusters_and_evidence_on_spark(inbox):
    """Scoring is all Spark does with a saved model: every pair, weight and cluster agrees."""
    charts = inbox["folder"] / "spark_charts"
    spark = match_records(
        inbox["records"],
        model=inbox["model"],
        memory_limit="1GB",
        engine="spark",
        spark_master="local[2]",
        charts_dir=charts,
    )
    duck = match_records(inbox["records"], model=inbox["model"], memory_limit="1GB")
    assert spark.training.parameters == duck.training.parameters == "saved model"
    assert partition(spark.clusters) == partition(duck.clusters)
    assert spark.clusters.equals(duck.clusters)  # cluster ids too
    assert len(partition(duck.clusters)) < inbox["records"].num_rows  # it did link records
    # The pairs scored at or above the threshold, their links and their weights.
    assert spark.pairs_linked == duck.pairs_linked > 0
    keys = ["unique_id_l", "unique_id_r", "is_linked", "cut_by", "blocking_rule"]
    assert spark.evidence.select(keys).equals(duck.evidence.select(keys))
    # Weights agree to the rounding, but for the few pairs whose names (or e-mails) Splink's
    # Spark jar finds more alike than DuckDB does: its Jaro-Winkler differs from DuckDB's
    # (rapidfuzz's) on some strings, 'porter' and 'poter' are 0.956 on Spark and 0.902 on DuckDB.
    columns = ["match_weight", "name_weight", "email_weight", "birth_date_weight"]
    columns += ["phone_weight", "address_weight"]
    differing = 0
    for a, b in zip(
        spark.evidence.select(columns).to_pylist(), duck.evidence.select(columns).to_pylist()
    ):
        if a["match_weight"] is None:  # a steward's pair, unscored
            continue
        for column in ("birth_date_weight", "phone_weight", "address_weight"):
            assert abs(a[column] - b[column]) < 1e-5, column
        string_gap = (a["name_weight"] - b["name_weight"]) + (a["email_weight"] - b["email_weight"])
        assert abs((a["match_weight"] - b["match_weight"]) - string_gap) < 1e-5
        differing += abs(string_gap) >= 1e-5
    assert differing <= 0.01 * spark.evidence.num_rows, differing
    # The model file a Spark run saves is the one a DuckDB run saves (DuckDB's SQL).
    assert spark.model_json == duck.model_json
    assert sorted(spark.charts) == [
        "cluster_studio",
        "m_u_parameters",
        "match_weights",
        "waterfall",
    ]
    assert all(path.stat().st_size > 10_000 for path in spark.charts.values())


@pytest.mark.spark
def test_trained_on_spark_the_pairwise_f1_is_within_0_005_of_duckdb(inbox):
    """Training samples and iterates on each engine's own arithmetic: the parameters differ
    in their last digits, the accuracy against the truth does not."""
    spark = match_records(
        inbox["records"], memory_limit="1GB", engine="spark", spark_master="local[2]"
    )
    assert spark.training.parameters == "trained"
    assert spark.training.trained_on == inbox["duckdb"].training.trained_on
    f1 = {}
    for engine, result in (("duckdb", inbox["duckdb"]), ("spark", spark)):
        precision, recall = pairwise_f1(inbox["records"], result.clusters, inbox["truth"])
        f1[engine] = 2 * precision * recall / (precision + recall)
    assert f1["duckdb"] > 0.9  # both engines find the people, not merely agree
    assert abs(f1["spark"] - f1["duckdb"]) <= 0.005, f1
    # The model trained on Spark is saved in DuckDB's SQL and runs there as it is.
    model = inbox["folder"] / "spark_model.json"
    model.write_text(json.dumps(spark.model_json), encoding="utf-8")
    reused = match_records(inbox["records"], model=model, memory_limit="1GB")
    assert reused.training.parameters == "saved model"
    assert partition(reused.clusters) == partition(spark.clusters)


@pytest.mark.spark
def test_scored_pairs_come_back_the_same_through_the_driver(tmp_path):
    """On a cluster the executors cannot write to this machine: the pairs come through the
    driver as Arrow. Both ways give DuckDB the same table."""
    tables = {}
    for through_driver in (False, True):
        con = duckdb.connect()
        scratch = tmp_path / str(through_driver)
        scratch.mkdir()
        with scoring_engine("spark", con, scratch, splink_settings(), "1GB", "local[1]") as engine:
            engine._is_local = not through_driver
            engine.load_candidates(
                con,
                "select concat('r', id) as unique_id_l, concat('s', id) as unique_id_r, "
                "id / 8.0 as match_weight, cast(id % 3 as int) as gamma_email "
                "from range(0, 50) as t(id)",
            )
        tables[through_driver] = con.sql(
            "select * from candidates order by unique_id_l"
        ).to_arrow_table()
    assert tables[False].num_rows == 50
    assert tables[False].equals(tables[True])
    assert tables[True].column("match_weight").to_pylist()[1] == 0.125
