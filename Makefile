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

.PHONY: all venv openadr kafka-jars ocpp-clients system-deps postgres tools image-deps test unit integration lint demo bench chaos chaos-long docs clean zone-loop

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

# PostgreSQL's server binaries, for the SQL sink's tests and the demo: evgrid/sql/local.py runs
# Debian's initdb and postgres in a temporary directory on a free port (never the machine's own
# cluster, which the package may create and which evgrid does not use). Installed only when
# missing; needs root (as on CI) or says what to run.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then \
		echo "==> PostgreSQL server binaries present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "==> installing Debian package: postgresql (server binaries for evgrid sql's tests and demo)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends postgresql >/dev/null && echo "    done"; \
	else \
		echo "evgrid: the SQL tests and the demo need PostgreSQL's server: sudo apt-get install postgresql" >&2; \
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

test: venv openadr kafka-jars ocpp-clients system-deps postgres tools image-deps lint
	@echo "==> pytest in $(TEST_PROCESSES) processes (each with its own local Kafka broker): unit, integration, chaos"
	@# The tests start evgrid's processes a few hundred times: compiled once here, not in each.
	@$(BIN)/python -m compileall -q evgrid >/dev/null
	@$(BIN)/python -m pytest -q -ra --durations=10 -n $(TEST_PROCESSES) --dist loadfile

unit: venv openadr
	@$(BIN)/python -m pytest -q -ra -m "not integration"

integration: venv openadr kafka-jars ocpp-clients system-deps postgres tools image-deps
	@$(BIN)/python -m pytest -q -ra -m integration

demo: venv openadr kafka-jars postgres
	@$(BIN)/evgrid demo $(DEMO_ARGS)

chaos: venv kafka-jars postgres
	@echo "==> fault-injection tests against a real local broker"
	@$(BIN)/python -m pytest -q -ra -m chaos

# The two-worker zone test, LOOP times in a row on one broker per run (not part of make test):
# a rebalance that lost part of a zone's picture shows as a failed run.
LOOP ?= 30
ZONE_TEST := tests/integration/test_zones.py::test_zone_totals_moves_tombstones_and_two_workers
zone-loop: venv kafka-jars
	@echo "==> $(ZONE_TEST), $(LOOP) runs"
	@pass=0; fail=0; for i in $$(seq 1 $(LOOP)); do \
		if $(BIN)/python -m pytest -q -p no:cacheprovider $(ZONE_TEST) >var/zone-loop-$$i.log 2>&1; \
		then pass=$$((pass+1)); rm -f var/zone-loop-$$i.log; echo "    run $$i: passed"; \
		else fail=$$((fail+1)); echo "    run $$i: FAILED (var/zone-loop-$$i.log)"; fi; \
	done; echo "$$pass passed, $$fail failed"; [ $$fail -eq 0 ]

# Not part of `make test`: the broker-outage chaos test with the broker away for 10 minutes.
chaos-long: venv kafka-jars
	@echo "==> the broker away for 10 minutes across DR decisions (about 13 minutes)"
	@EVGRID_CHAOS_LONG_OUTAGE_S=600 $(BIN)/python -m pytest -q -ra -s -m chaos \
		tests/chaos/test_broker_outage.py

bench: venv kafka-jars
	@echo "==> benchmarks against a fresh local broker (about 10 minutes; figures, not pass/fail; BENCH_ARGS=\"--phases latency\" for one phase)"
	@$(BIN)/evgrid bench $(BENCH_ARGS)

# docs/configuration.md is generated from the settings classes; a test fails while it is stale.
docs: venv
	@$(BIN)/python -m evgrid.settings_doc

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var build *.egg-info
