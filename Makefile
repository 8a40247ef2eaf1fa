# Two commands on a fresh machine: `make demo` and `make test`. Everything else is here for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: system-deps install test unit lint bench bench-feast demo stack-up stack-down

# Debian packages: redis-server, and Java + Maven for the Kafka broker; Prometheus (and its
# promtool) and Chromium with its driver for the ops console's checks and browser tests;
# openssl, the tests' outside check of the model-record signatures.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(BIN)/tideline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: system-deps $(BIN)/tideline

# Unit and integration tests; the integration tests use a running stack or start their own.
test: install
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Pipeline benchmarks need the stack: `make stack-up` first.
bench: install
	$(BIN)/python benchmarks/serde.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/featurestore.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/drift_policy.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/monitor.py
	$(BIN)/python benchmarks/loop.py
	$(BIN)/python benchmarks/adaptation.py

# Online retrieval next to Feast, which lives in a venv of its own (it pins pandas < 3).
BENCH_VENV := .venv-bench
$(BENCH_VENV)/bin/feast: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q -U pip
	$(BENCH_VENV)/bin/pip install -q -e '.[bench]'
	touch $@

bench-feast: system-deps $(BENCH_VENV)/bin/feast
	$(BENCH_VENV)/bin/python benchmarks/retrieval.py

stack-up: install
	$(BIN)/tideline stack up
	$(BIN)/tideline topics create

stack-down:
	$(BIN)/tideline stack down

# The stack, ingest and the feature store, end to end; everything stopped afterwards.
demo: install
	$(BIN)/tideline demo
