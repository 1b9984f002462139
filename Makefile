# fefm-lab: every target sets up what it needs first. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FEFM := $(VENV)/bin/fefm-lab
STAMP := $(VENV)/.fefm-lab-installed
KERNELS_STAMP := $(VENV)/.fefm-lab-kernels
# TensorFlow build: cpu (tensorflow-cpu) or gpu (tensorflow[and-cuda]); see README "Running on a GPU"
TF_BUILD ?= cpu

.PHONY: help setup test test-all lint format run sweep tune report ui bench bench-peer bench-cluster clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# compat: the checkout itself is on sys.path, so Hydra finds hydra_plugins/fefm_lab_launchers
	$(PY) -m pip install -q -e ".[dev,cluster,$(TF_BUILD)]" --config-settings editable_mode=compat
	@touch $(STAMP)

# C++ kernels (fefm_lab/kernels/*.cc) against the installed TensorFlow, rebuilt when TensorFlow
# changes (its __init__.py is rewritten by every install). A kernel that fails to build or load
# stops here; without any C++ compiler the TensorFlow-ops path is used (the build says so).
TF_INSTALLED := $(wildcard $(VENV)/lib/python3*/site-packages/tensorflow/__init__.py)
$(KERNELS_STAMP): $(STAMP) $(TF_INSTALLED) $(wildcard fefm_lab/kernels/*.cc) fefm_lab/kernels/build.py
	$(PY) -m fefm_lab.kernels.build
	@touch $(KERNELS_STAMP)

setup: $(STAMP) $(KERNELS_STAMP) ## Create .venv (if missing), install fefm-lab with its test tools and cluster extra, build the C++ kernels

test: setup ## Run the test suite (slow checks excluded)
	$(PY) -m pytest -m "not slow" -q

test-all: setup ## Run every test, slow ones included
	$(PY) -m pytest -q

lint: setup ## ruff check and format check, the import contracts (pyproject: [tool.importlinter])
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: setup ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# `make run force=true` reruns a finished configuration (what the skip message says); any other
# overrides go in RUN_ARGS (make run RUN_ARGS="model=fm seed=2")
run: setup ## Train the default job (DeepFEFM, embedded synthetic data) and print test AUC / log loss
	$(FEFM) run $(RUN_ARGS) $(if $(force),force=$(force))

sweep: setup ## Ablation study on synthetic data, seeds added until the verdicts settle (2 jobs at once), then the report (and README)
	$(FEFM) run -m experiment=synthetic_ablation hydra/launcher=joblib $(if $(force),force=$(force))
	$(MAKE) --no-print-directory report

tune: setup ## Tuned ablation study on synthetic data: each ablation tuned on validation (Optuna), then over 5 seeds; report (and README)
	$(FEFM) run -m experiment=tuned_ablation
	$(FEFM) report experiment=tuned_ablation
	$(PY) scripts/embed_results.py README.md

report: setup ## Rebuild the ablation report of the synthetic sweep under results/ and in README.md
	$(FEFM) report experiment=synthetic_ablation
	$(PY) scripts/embed_results.py README.md

ui: setup ## Open the MLflow UI on 127.0.0.1 for the configured tracking store
	$(FEFM) ui

bench: setup ## Benchmarks (preparation, FEFM layer, input pipeline, vocabulary size, checkpoints, step profile) -> results/bench/ (BENCH_ARGS=--full: 45.8M rows; --smoke: seconds)
	$(PY) -m scripts.bench all $(BENCH_ARGS)
	$(PY) -m scripts.bench profile $(BENCH_ARGS:--full=)
	@# sweeps on a local cluster (root + PostgreSQL; minutes): not in a --smoke run
	@if [[ "$(BENCH_ARGS)" == *--smoke* ]]; then :; \
	elif [ "$$(id -u)" = 0 ]; then $(PY) -m scripts.bench cluster; \
	else echo "bench cluster skipped: it needs root (a network namespace); run 'make bench-cluster' as root"; fi
	$(PY) scripts/embed_results.py README.md

bench-cluster: setup ## Launcher + tracking overhead per job and Ray jobs/hour, 1 vs 2 nodes -> results/bench/cluster.md (root, PostgreSQL)
	$(PY) -m scripts.bench cluster

bench-peer: setup ## Side-by-side with the reference DeepCTR DeepFEFM (own venv .bench-peer-venv) -> results/bench/
	$(PY) -m scripts.bench peer $(BENCH_PEER_ARGS)
	$(PY) scripts/embed_results.py README.md

clean: ## Remove build outputs and local run outputs (keeps .venv and results/)
	rm -rf build dist *.egg-info outputs multirun .pytest_cache .ruff_cache .import_linter_cache
