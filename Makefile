# mirflow: the two commands of the Quick start are `make run` and `make test`; `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INPUT ?=
RESULTS ?= results
CORES ?= all
SNAKEMAKE_ARGS ?=
V ?=
BATCH_SIZE ?=
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

help:  ## list the targets (this text)
	@echo "make [target] [INPUT=/path/to/music] [RESULTS=results] [CORES=all] [V=1] [SNAKEMAKE_ARGS=...]"
	@grep -E '^[a-z-]+:.*## ' Makefile | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 18

$(STAMP): scripts/install.sh envs/requirements.txt envs/requirements-nodeps.txt envs/requirements-llm.txt envs/constraints.txt pyproject.toml
	PYTHON=$(PYTHON) bash scripts/install.sh
	@touch $@

install: $(STAMP)  ## create .venv and install the pinned dependencies (the other targets do it first)

demo/.complete: $(STAMP) scripts/mirflow/demo.py
	$(BIN)/python -m mirflow.demo demo

demo: demo/.complete  ## generate the demo corpus (demo/)

run: $(STAMP) $(DEMO_DEP)  ## process INPUT (default: the demo) into RESULTS; V=1 prints Snakemake's full output
	@$(BIN)/python -m mirflow.run $(if $(V),-v) $(if $(BATCH_SIZE),--batch-size $(BATCH_SIZE)) \
	  --cores $(CORES) $(CONFIG_FILES) --config $(CONFIG_ARGS) $(SNAKEMAKE_ARGS)

models: $(STAMP) $(DEMO_DEP)  ## fetch the model files (Demucs, ADTOF, Essentia...) into models/, sha256-verified
	$(BIN)/snakemake fetch_models --cores 1 $(CONFIG_FILES) --config $(CONFIG_ARGS)

dry-run: $(STAMP) $(DEMO_DEP)  ## list the jobs a run would execute, without running them
	$(BIN)/snakemake -n --cores $(CORES) $(CONFIG_FILES) --config $(CONFIG_ARGS) $(SNAKEMAKE_ARGS)

report: $(STAMP)  ## rebuild the corpus report (RESULTS/stats/) from the .INFO files present
	$(BIN)/python -m mirflow.stats "$(RESULTS)"
	$(BIN)/python -m mirflow.stats "$(RESULTS)" --crops

summary: $(STAMP)  ## the end-of-run summary of RESULTS again: tracks, failed jobs, where to look
	$(BIN)/python -m mirflow.summary "$(RESULTS)" $(INPUT)

# All three run even when one fails, so one `make lint` shows every finding; it fails when any did.
lint: $(STAMP) $(DEMO_DEP)  ## snakemake --lint, ruff (scripts benchmarks tests) and mypy (scripts/mirflow)
	@failed=""; \
	echo "[lint] snakemake --lint"; \
	$(BIN)/snakemake --lint $(CONFIG_FILES) --config $(CONFIG_ARGS) || failed="$$failed snakemake"; \
	echo "[lint] ruff check scripts benchmarks tests (rules: [tool.ruff] in pyproject.toml)"; \
	$(BIN)/ruff check scripts benchmarks tests || failed="$$failed ruff"; \
	echo "[lint] mypy scripts/mirflow (settings: [tool.mypy] in pyproject.toml)"; \
	$(BIN)/mypy || failed="$$failed mypy"; \
	if [ -n "$$failed" ]; then echo "[lint] FAILED:$$failed" >&2; exit 1; fi; \
	echo "[lint] clean: snakemake, ruff, mypy"

readme: $(STAMP)  ## regenerate docs/features.md (the feature reference) from the catalogue
	$(BIN)/python -m mirflow.catalogue --readme docs/features.md

test: $(STAMP)  ## install (first time), then run the test suite
	$(BIN)/python -m pytest -q

clean-results:  ## delete RESULTS and .snakemake (all results!)
	rm -rf "$(RESULTS)" .snakemake
