# Make is the DAG: `make all` runs the numbered notebooks in order into runs/$(RUN)/ with papermill.
# Everything runs inside .venv, (re)built from the pinned requirements.txt when missing or stale.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR ?=
PROFILE ?= $(if $(DATA_DIR),kaggle,sample)
RUN ?= $(shell date +%Y%m%d-%H%M%S)
RUN := $(RUN)
PIPELINE = $(PY) -m samesame.pipeline run --profile $(PROFILE) --run $(RUN) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

.PHONY: all test venv sample eda phash backbones finetune metric errors submission results bench data lab strip clean-cache help
help:
	@echo "make all [DATA_DIR=<kaggle folder>] [RUN=<name>] [PROFILE=sample|kaggle|gpu]  run notebooks 01..07 into runs/RUN/"
	@echo "make test        unit + end-to-end tests";  echo "make sample      generate the embedded sample (data/sample)"
	@echo "make eda|phash|backbones|finetune|metric|errors|submission  one notebook (same RUN to reuse a run)"
	@echo "make results RUNS=\"<run> ...\"  RESULTS.md + docs/figures/ from those runs' metrics.json and params.yaml"
	@echo "make bench       embedding + kNN benchmark -> runs/bench/bench.json"
	@echo "make data        download the competition with the Kaggle CLI";  echo "make lab         JupyterLab on the repo"

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 needed, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(VENV)/bin/nbstripout --install --attributes .gitattributes 2>/dev/null || true
	touch $@

venv: $(STAMP)

all: $(STAMP)
	$(PIPELINE)

eda: $(STAMP) ; $(PIPELINE) --only 01_eda
phash: $(STAMP) ; $(PIPELINE) --only 02_phash
backbones: $(STAMP) ; $(PIPELINE) --only 03_backbone_compare
finetune: $(STAMP) ; $(PIPELINE) --only 04_finetune
metric: $(STAMP) ; $(PIPELINE) --only 05_metric
errors: $(STAMP) ; $(PIPELINE) --only 06_error_analysis
submission: $(STAMP) ; $(PIPELINE) --only 07_submission

sample: $(STAMP)
	$(PY) -m samesame.pipeline sample --profile $(PROFILE)

test: $(STAMP)
	$(PY) -m pytest

results: $(STAMP)
	$(PY) -m samesame.results $(RUNS)

bench: $(STAMP)
	$(PY) scripts/bench.py --out runs/bench/bench.json

data:
	@bash scripts/kaggle_data.sh data/shopee-product-matching

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=.

strip: $(STAMP)
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean-cache:
	rm -rf .cache
