# mirflow: the two commands of the Quick start are `make run` and `make test`.
#   make run                      install (first time), generate the demo corpus, run the workflow on it
#   make run INPUT=/path/to/music process your own folder (results in RESULTS, default: results)
#   make test                     install (first time), run the test suite
#   make models                   fetch the model files (Demucs, ADTOF...) into models/, verified by sha256
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INPUT ?=
RESULTS ?= results
CORES ?= all
SNAKEMAKE_ARGS ?=
STAMP := $(VENV)/.mirflow-installed

CONFIG_ARGS := results_dir="$(RESULTS)"
ifneq ($(strip $(INPUT)),)
CONFIG_ARGS += input_dir="$(INPUT)"
DEMO_DEP :=
CONFIG_FILES := --configfile config/config.yaml
else
DEMO_DEP := demo/.complete
CONFIG_FILES := --configfile config/config.yaml config/demo.yaml
endif

.PHONY: run test install demo models report dry-run lint summary readme clean-results help

help:
	@sed -n '2,6p' Makefile

$(STAMP): scripts/install.sh envs/requirements.txt envs/requirements-nodeps.txt envs/requirements-llm.txt envs/constraints.txt pyproject.toml
	PYTHON=$(PYTHON) bash scripts/install.sh
	@touch $@

install: $(STAMP)

demo/.complete: $(STAMP) scripts/mirflow/demo.py
	$(BIN)/python -m mirflow.demo demo

demo: demo/.complete

run: $(STAMP) $(DEMO_DEP)
	@set -o pipefail; status=0; \
	$(BIN)/snakemake --cores $(CORES) $(CONFIG_FILES) --config $(CONFIG_ARGS) $(SNAKEMAKE_ARGS) || status=$$?; \
	exit $$status

models: $(STAMP) $(DEMO_DEP)
	$(BIN)/snakemake fetch_models --cores 1 $(CONFIG_FILES) --config $(CONFIG_ARGS)

dry-run: $(STAMP) $(DEMO_DEP)
	$(BIN)/snakemake -n --cores $(CORES) $(CONFIG_FILES) --config $(CONFIG_ARGS) $(SNAKEMAKE_ARGS)

report: $(STAMP)
	$(BIN)/python -m mirflow.stats "$(RESULTS)"
	$(BIN)/python -m mirflow.stats "$(RESULTS)" --crops

summary: $(STAMP)
	$(BIN)/python -m mirflow.summary "$(RESULTS)" $(INPUT)

lint: $(STAMP)
	$(BIN)/snakemake --lint

readme: $(STAMP)
	$(BIN)/python -m mirflow.catalogue --readme README.md

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean-results:
	rm -rf "$(RESULTS)" .snakemake
