"""Where Splink scores record pairs: DuckDB on this machine (the default) or Spark.

The setting identity_engine picks one. Only the pairwise part runs on the engine: training
(u sampling, expectation maximisation, the first prior) and scoring the candidate pairs,
which grows with the pairs and is what outgrows one machine. Everything before and after is
DuckDB on the match's own connection (assets/identity/matching.py), whatever the engine:
planning the training, term frequencies, re-estimating the prior, stewards' decisions, the
conflict guard and clustering. The scored pairs come back from Spark as Parquet and are read
into DuckDB table `candidates`, so everything after scoring is one code path.

The model is declared once (assets/identity/model.py) in DuckDB's SQL; Splink writes it for
Spark. A model file is always saved in DuckDB's SQL, so a model trained on Spark can be
reused on DuckDB and the other way round (`portable`, `model_settings`). docs/scale.md says
how to run on a cluster.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from splink import DuckDBAPI, SettingsCreator

from assets.shared.defaults import ENGINES, spark_missing

# Spark's own names for the DuckDB string functions the model's conditions use: Splink's
# translation of `jaro_winkler_similarity` (model.py) comes out as JAROWINKLER_SIMILARITY,
# which Spark does not have. The class is the one Splink's jar provides for its own
# Jaro-Winkler levels, so both spellings compute the same thing.
SPARK_FUNCTION_ALIASES = {
    "jarowinkler_similarity": "uk.gov.moj.dash.linkage.JaroWinklerSimilarity",
    "jaro_winkler_similarity": "uk.gov.moj.dash.linkage.JaroWinklerSimilarity",
}


# Spark's own log: errors only, so a run's output is the run's (local mode).
SPARK_LOG_CONFIG = Path(__file__).resolve().parent / "reference" / "spark-log4j2.properties"


class EngineError(ValueError):
    """The engine cannot run the model as asked; the message is one line."""


class DuckDBEngine:
    """Splink on the match's own DuckDB connection: scoring and what follows share it."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.db_api = DuckDBAPI(connection=con)
        self.duckdb_api = self.db_api  # clustering (conflict guard) runs on the same API

    def model_settings(self, model: Path) -> str:
        return str(model)  # a saved model is already in DuckDB's SQL

    def portable(self, model: dict) -> dict:
        return model

    def load_candidates(self, con: duckdb.DuckDBPyConnection, sql: str) -> None:
        con.execute(f"create table candidates as {sql}")

    def splink_table(self, con: duckdb.DuckDBPyConnection, table: str) -> str:
        return table


class SparkEngine:
    """Splink on Spark (SparkAPI); the scored pairs come back to DuckDB as Parquet."""

    name = "spark"
    dialect = "spark"

    def __init__(
        self, spark, con: duckdb.DuckDBPyConnection, scratch: Path, declared: SettingsCreator
    ):
        from splink import SparkAPI

        self.spark = spark
        self.scratch = scratch
        self.declared = declared
        is_local = spark.sparkContext.master.startswith("local")
        if is_local and spark.sparkContext.getCheckpointDir() is None:
            # Splink writes its intermediate tables as Parquet there (its default on Spark).
            spark.sparkContext.setCheckpointDir(str(scratch / "checkpoints"))
        if "DATABRICKS_RUNTIME_VERSION" in os.environ:
            lineage = None  # Splink's own choice there: Delta tables in the current schema
        elif spark.sparkContext.getCheckpointDir() is not None:
            lineage = "parquet"
        else:
            # A cluster without a checkpoint folder: no local path is shared with the
            # executors, so intermediate tables are kept in the executors' memory and disk.
            lineage = "persist"
        self.db_api = SparkAPI(spark_session=spark, break_lineage_method=lineage)
        from pyspark.sql.types import DoubleType

        for name, java_class in SPARK_FUNCTION_ALIASES.items():
            spark.udf.registerJavaFunction(name, java_class, DoubleType())
        self.duckdb_api = DuckDBAPI(connection=con)  # stewards, guard and clustering stay here
        self._is_local = is_local

    def model_settings(self, model: Path) -> dict:
        try:
            saved = json.loads(model.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise EngineError(
                f"identity_model {model}: not a readable model file ({err})"
            ) from None
        return in_dialect(saved, self.declared, "spark", source=str(model))

    def portable(self, model: dict) -> dict:
        """`model` as a DuckDB linker saves it (Splink's Settings.as_dict), so the file is
        the same whichever engine trained it."""
        settings = in_dialect(model, self.declared, "duckdb", source="the model trained on Spark")
        settings["linker_uid"] = model.get("linker_uid")
        return SettingsCreator.from_path_or_dict(settings).get_settings("duckdb").as_dict()

    def load_candidates(self, con: duckdb.DuckDBPyConnection, sql: str) -> None:
        """Run `sql` (the scored pairs' columns, matching.SCORED_SELECT) in Spark, write the
        result as Parquet and read it into DuckDB table `candidates`."""
        pairs = self.spark.sql(sql)
        folder = self.scratch / "candidates"
        if self._is_local:
            # The executors are threads of this machine: they write the files themselves.
            pairs.write.parquet(str(folder))
        else:
            # Executors elsewhere cannot write to this machine's disk: the pairs come through
            # the driver (spark.driver.maxResultSize must hold them; docs/scale.md).
            import pyarrow.parquet as pq

            folder.mkdir(parents=True)
            pq.write_table(pairs.toArrow(), folder / "part-0.parquet")
        con.execute(f"create table candidates as select * from read_parquet('{folder}/*.parquet')")

    def splink_table(self, con: duckdb.DuckDBPyConnection, table: str) -> str:
        """DuckDB table `table` copied into Spark (for the cluster studio chart); its name there."""
        self.db_api.register(con.sql(f"select * from {table}").to_arrow_table(), table_name=table)
        return table


def in_dialect(model: dict, declared: SettingsCreator, dialect: str, source: str) -> dict:
    """`model`'s probabilities on the declared model written in `dialect`'s SQL.

    Levels are matched by comparison, position and label, as default_parameters in
    matching.py does; a model of another shape (saved before the model was changed) is
    refused rather than given to the wrong levels.
    """
    settings = declared.create_settings_dict(dialect)

    def shape(comparisons: list[dict]) -> list[tuple]:
        return [
            (comparison["output_column_name"], level.get("label_for_charts"))
            for comparison in comparisons
            for level in comparison["comparison_levels"]
        ]

    if shape(model.get("comparisons", [])) != shape(settings["comparisons"]):
        raise EngineError(
            f"identity_model {source}: its comparisons are not those of assets/identity/model.py "
            "(saved before the model changed?): train again"
        )
    for target, saved in zip(settings["comparisons"], model["comparisons"]):
        for level, saved_level in zip(target["comparison_levels"], saved["comparison_levels"]):
            for key in ("m_probability", "u_probability"):
                if key in saved_level:
                    level[key] = saved_level[key]
    settings["probability_two_random_records_match"] = model["probability_two_random_records_match"]
    return settings


def spark_memory(size: str) -> str:
    """A size as DuckDB reads it (4GB, 512MB, 1.5GiB) as Spark reads it (whole mebibytes: 4096m)."""
    number, unit = re.fullmatch(r"([\d.]+)\s*([KMGT]i?B)", size.strip(), re.IGNORECASE).groups()
    powers = {"k": 1, "m": 2, "g": 3, "t": 4}
    base = 1024 if "i" in unit.lower() else 1000
    return f"{max(int(float(number) * base ** powers[unit[0].lower()] / 2**20), 512)}m"


def spark_session(master: str, memory_limit: str, scratch: Path):
    """The Spark session to score on, and whether this call started it (then it is stopped
    after the match).

    A session that is already there is used as it is: Databricks' (or a caller's). Under
    spark-submit, its --master and --conf are the settings and `master` is not applied.
    Otherwise Spark starts here at `master`, with Splink's jar of similarity functions;
    in local mode with the run's memory limit for its one JVM, a few shuffle partitions per
    core (Spark's default 200 would make thousands of tiny tasks of a small data set) and
    its spill folder in the match's scratch folder.
    """
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    builder = SparkSession.builder.appName("omniloyal-identity").config(
        "spark.jars", similarity_jar_location()
    )
    if not under_spark_submit:
        builder = builder.master(master)
        if master.startswith("local"):
            partitions = str(2 * (os.cpu_count() or 1))
            builder = (
                builder.config("spark.driver.memory", spark_memory(memory_limit))
                .config("spark.sql.shuffle.partitions", partitions)
                .config("spark.default.parallelism", partitions)
                .config("spark.local.dir", str(scratch / "spark-local"))
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config(
                    "spark.driver.extraJavaOptions", f"-Dlog4j.configurationFile={SPARK_LOG_CONFIG}"
                )
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
            )
    if not under_spark_submit and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # no network needed, none used
    with warnings.catch_warnings():
        # pyspark's notice that it is not yet tested with pandas 3: no pandas is used here.
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        spark = builder.config("spark.sql.session.timeZone", "UTC").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark, not under_spark_submit


@contextmanager
def scoring_engine(
    name: str,
    con: duckdb.DuckDBPyConnection,
    scratch: Path,
    declared: SettingsCreator,
    memory_limit: str,
    spark_master: str,
) -> Iterator[DuckDBEngine | SparkEngine]:
    """The engine `name` for one match; `scratch` is the match's temporary folder."""
    if name == "duckdb":
        yield DuckDBEngine(con)
        return
    if name != "spark":
        raise EngineError(f"identity_engine must be one of {', '.join(ENGINES)}, got {name!r}")
    problem = spark_missing()
    if problem:
        raise EngineError(problem)
    spark, started_here = spark_session(spark_master, memory_limit, scratch)
    try:
        yield SparkEngine(spark, con, scratch, declared)
    finally:
        if started_here:
            spark.stop()  # its memory goes back to the rest of the run (DuckDB from here on)
