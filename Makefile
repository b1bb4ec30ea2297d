# Everything bootstraps itself: the virtual environment, the Python packages and Apache Kafka's
# jars. Each step is idempotent (stamp files) and says what it is doing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OPENADR_STAMP := $(VENV)/.openadr-installed

.PHONY: all venv openadr kafka-jars system-deps test unit integration lint demo bench chaos clean

all: test

$(STAMP): pyproject.toml
	@echo "==> creating the virtual environment in $(VENV) (Python: $$($(PYTHON) --version))"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> installing evgrid and its test tools (pip; this takes a minute the first time)"
	@$(BIN)/python -m pip install --disable-pip-version-check --upgrade pip >/dev/null
	@$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -e '.[dev]' \
		| grep -E '^(Collecting|Successfully)' || true
	@$(BIN)/python -c "import evgrid, faust, aiokafka" \
		|| (echo "evgrid: the Python install failed; see the pip output above" >&2; exit 1)
	@touch $(STAMP)
	@echo "==> Python environment ready"

venv: $(STAMP)

# The optional extra evgrid[openadr] (openleadr pins xmltodict exactly, so it is not a core
# dependency); its tests and `evgrid openadr` need it.
$(OPENADR_STAMP): $(STAMP) pyproject.toml
	@echo "==> installing the OpenADR extra: evgrid[openadr] (openleadr, pyyaml)"
	@$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -e '.[dev,openadr]' \
		| grep -E '^(Collecting|Successfully)' || true
	@$(BIN)/python -c "import openleadr, yaml" \
		|| (echo "evgrid: installing evgrid[openadr] failed; see the pip output above" >&2; exit 1)
	@touch $(OPENADR_STAMP)

openadr: $(OPENADR_STAMP)

kafka-jars: venv
	@echo "==> Apache Kafka jars (resolved once from Maven Central into ~/.cache/evgrid)"
	@$(BIN)/evgrid kafka --prefetch

# Debian packages the tests drive: headless Chromium (dashboard test) and promtool (alert
# rules). Installed only when missing; needs root (as on CI) or says what to run.
system-deps:
	@if command -v chromium >/dev/null && command -v promtool >/dev/null; then \
		echo "==> chromium and promtool present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "==> installing Debian packages: chromium prometheus (for promtool)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium prometheus >/dev/null && echo "    done"; \
	else \
		echo "evgrid: the tests need chromium and promtool: sudo apt-get install chromium prometheus" >&2; \
		exit 1; \
	fi

lint: venv
	@echo "==> ruff"
	@$(BIN)/ruff check evgrid tests

test: venv openadr kafka-jars system-deps lint
	@echo "==> pytest: unit tests, then integration tests against a real local Kafka broker"
	@$(BIN)/python -m pytest -q -ra --durations=10

unit: venv openadr
	@$(BIN)/python -m pytest -q -ra -m "not integration"

integration: venv openadr kafka-jars system-deps
	@$(BIN)/python -m pytest -q -ra -m integration

demo: venv openadr kafka-jars
	@$(BIN)/evgrid demo $(DEMO_ARGS)

chaos: venv kafka-jars
	@echo "==> fault-injection tests against a real local broker"
	@$(BIN)/python -m pytest -q -ra -m chaos

bench: venv kafka-jars
	@echo "==> benchmarks against a fresh local broker (about 10 minutes; figures, not pass/fail)"
	@$(BIN)/evgrid bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var build *.egg-info
