# Everything bootstraps itself: the virtual environment, the Python packages and Apache Kafka's
# jars. Each step is idempotent (stamp files) and says what it is doing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Most of the suite's time is waiting (rebalances, outages, timers), not CPU: two processes
# halve it on this 2-core machine. TEST_PROCESSES=0 runs it in one process.
TEST_PROCESSES ?= 2
OPENADR_STAMP := $(VENV)/.openadr-installed

.PHONY: all venv openadr kafka-jars ocpp-clients system-deps tools image-deps test unit integration lint demo bench chaos chaos-long clean

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

# The independent OCPP chargers of the gateway tests: eu.chargetime.ocpp:v1_6 (Maven Central,
# compiled against with javac) and npm ocpp-rpc, cached in ~/.cache/evgrid.
ocpp-clients: venv
	@echo "==> independent OCPP chargers for the gateway tests (Java v1_6, npm ocpp-rpc)"
	@$(BIN)/python -m tests.gateway.clients.install

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

# kustomize for the manifest tests (tests/config/test_k8s.py). Neither Debian nor PyPI packages
# it (PyPI's `kustomize` is an unrelated Python re-implementation), so it is built from its Go
# module with the machine's Go, once, into the virtual environment.
KUSTOMIZE_VERSION := v5.5.0
tools: venv
	@if [ -x $(BIN)/kustomize ]; then \
		echo "==> kustomize present ($(BIN)/kustomize)"; \
	elif command -v go >/dev/null; then \
		echo "==> building kustomize $(KUSTOMIZE_VERSION) from the Go module proxy into $(BIN) (about 3 minutes, once)"; \
		GOBIN=$(CURDIR)/$(BIN) GOFLAGS=-mod=mod go install \
			sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION) && echo "    done"; \
	else \
		echo "evgrid: the manifest tests need kustomize: install Go (then make tools) or put kustomize $(KUSTOMIZE_VERSION) in $(BIN)" >&2; \
		exit 1; \
	fi

# The container image test (tests/config/test_image.py) builds the Dockerfile with podman
# (runc: crun cannot set up a container in this sandbox) on a Debian-made base image, since
# python:3.11-slim's registry is not reachable here. Installed and built once.
image-deps:
	@if command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null; then \
		echo "==> podman, runc and debootstrap present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "==> installing Debian packages: podman runc debootstrap"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends podman runc debootstrap >/dev/null && echo "    done"; \
	else \
		echo "evgrid: the image test needs podman, runc and debootstrap: sudo apt-get install podman runc debootstrap" >&2; \
		exit 1; \
	fi
	@sh config/image-base.sh

lint: venv
	@echo "==> ruff"
	@$(BIN)/ruff check evgrid tests

test: venv openadr kafka-jars ocpp-clients system-deps tools image-deps lint
	@echo "==> pytest in $(TEST_PROCESSES) processes (each with its own local Kafka broker): unit, integration, chaos"
	@$(BIN)/python -m pytest -q -ra --durations=10 -n $(TEST_PROCESSES) --dist loadfile

unit: venv openadr
	@$(BIN)/python -m pytest -q -ra -m "not integration"

integration: venv openadr kafka-jars ocpp-clients system-deps tools image-deps
	@$(BIN)/python -m pytest -q -ra -m integration

demo: venv openadr kafka-jars
	@$(BIN)/evgrid demo $(DEMO_ARGS)

chaos: venv kafka-jars
	@echo "==> fault-injection tests against a real local broker"
	@$(BIN)/python -m pytest -q -ra -m chaos

# Not part of `make test`: the broker-outage chaos test with the broker away for 10 minutes.
chaos-long: venv kafka-jars
	@echo "==> the broker away for 10 minutes across DR decisions (about 13 minutes)"
	@EVGRID_CHAOS_LONG_OUTAGE_S=600 $(BIN)/python -m pytest -q -ra -s -m chaos \
		tests/chaos/test_broker_outage.py

bench: venv kafka-jars
	@echo "==> benchmarks against a fresh local broker (about 20 minutes; figures, not pass/fail; BENCH_ARGS=\"--phases latency\" for one phase)"
	@$(BIN)/evgrid bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var build *.egg-info
