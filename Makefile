# Make is the DAG: `make all` runs the numbered notebooks in order into runs/$(RUN)/ with papermill.
# Each notebook target depends on the artefact files it reads (runs/$(RUN)/models/...), so
# `make submission RUN=new` builds exactly those it lacks, each once, then runs 07:
#   models/backbone.json (03)   models/finetune.json (04)   models/embedding.json (05)
#     ->  models/matcher/matcher.json (fit)  ->  06, 07
# Named targets (eda ... submission, fit) always (re)run their own step; artefacts are rebuilt only when missing
# or older than the notebook that writes them.
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
ifeq ($(strip $(RUN)),)
$(error RUN is empty: name the run (RUN=<name>), or leave RUN out for a timestamp)
endif
ifneq ($(words $(RUN)),1)
$(error RUN="$(RUN)" holds a space: a run lives in runs/<RUN>/; use letters, digits, '-', '_' and '.')
endif
# one shell word, whatever it holds (a DATA_DIR with a space or a quote)
quote = '$(subst ','\'',$(1))'
ifeq ($(shell name=$(call quote,$(RUN)); [ $${#name} -le 100 ] && echo short),)
$(error RUN is $(shell printf %s $(call quote,$(RUN)) | wc -c) characters long: choose a name of at most 100 (runs.MAX_RUN_NAME))
endif
ARGS = --profile $(call quote,$(PROFILE)) --run $(call quote,$(RUN)) $(if $(DATA_DIR),--data-dir $(call quote,$(DATA_DIR)))
PIPELINE = $(PY) -m samesame.run.pipeline run $(ARGS)
FIT = $(PY) -m samesame.run.pipeline fit $(ARGS)
R := runs/$(RUN)
BACKBONE := $(R)/models/backbone.json
FINETUNE := $(R)/models/finetune.json
EMBEDDING := $(R)/models/embedding.json
IMAGE_MODEL := $(BACKBONE) $(FINETUNE) $(EMBEDDING)
MATCHER := $(R)/models/matcher/matcher.json

.PHONY: all test test-all venv sample eda phash backbones finetune metric errors fit submission kaggle results bench gpu-check data lab strip clean-cache rehearsal kaggle-run help
help:
	@echo "make all [DATA_DIR=<kaggle folder>] [RUN=<name>] [PROFILE=sample|kaggle|gpu]  run notebooks 01..07 into runs/RUN/"
	@echo "                 (again with the same RUN: keeps the notebooks that finished, runs the rest)"
	@echo "make test        unit tests + one end-to-end run (minutes)"; echo "make test-all    make test, then the slow checks (what CI runs)";  echo "make sample      generate the embedded sample (data/sample)"
	@echo "make eda|phash|backbones|finetune|metric|errors|submission  one notebook (same RUN to reuse a run)"
	@echo "make results RUNS=\"<run> ...\"  RESULTS.md + docs/figures/ from those runs' metrics.json and params.yaml"
	@echo "make fit         fit the matcher on train.csv -> runs/RUN/models/matcher/ (07 loads it)"
	@echo "make kaggle RUN=<run>  offline Kaggle dataset + inference notebook of that run's matcher -> dist/kaggle/ [KAGGLE_USER=name]"
	@echo "make rehearsal [SCALE=1/8]  a synthetic competition at SCALE x Kaggle's size (34,250 train + 70,000 test"
	@echo "                 listings with 512-960 px photos, and test_solution.csv) -> data/rehearsal-<SCALE>/"
	@echo "make kaggle-run RUN=<run> DATA_DIR=<folder>  the bundle's notebook offline on the folder's test.csv, as"
	@echo "                 Kaggle runs it: wall/CPU time, peak memory, F1 (with test_solution.csv) -> runs/RUN/metrics.json"
	@echo "make bench       embedding + kNN benchmark -> runs/bench/bench.json"
	@echo "make gpu-check [PROFILE=gpu] [DATA_DIR=...]  before a long GPU job: known answers + images/s, titles/s"
	@echo "make data        download the competition with the Kaggle CLI";  echo "make lab         JupyterLab on the repo"
	@echo "make venv        (re)build .venv from requirements.txt (every target does it when needed)"
	@echo "make strip       clear the outputs of notebooks/*.ipynb";  echo "make clean-cache delete .cache (embeddings, title encoders)"

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed (the pinned numpy, pandas and keras), found " + sys.version' 
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
metric: $(STAMP) $(BACKBONE) $(FINETUNE) ; $(PIPELINE) --only 05_metric
errors: $(STAMP) check-06_error_analysis $(MATCHER) ; $(PIPELINE) --only 06_error_analysis
fit: $(STAMP) $(IMAGE_MODEL) ; $(FIT)
submission: $(STAMP) check-07_submission $(MATCHER) ; $(PIPELINE) --only 07_submission

# every check that needs no work (settings, RUN, the data, the cache, test.csv for 07), before make builds or refits
# what the notebook reads: a submission on a folder without test.csv stops in seconds, its run's matcher untouched
CHECKS := check-06_error_analysis check-07_submission
.PHONY: $(CHECKS)
$(CHECKS): check-%: $(STAMP) ; $(PIPELINE) --only $* --check

# the artefacts (files), built only when missing or stale
$(BACKBONE): notebooks/03_backbone_compare.ipynb | $(STAMP) ; $(PIPELINE) --only 03_backbone_compare
$(FINETUNE): notebooks/04_finetune.ipynb | $(STAMP) ; $(PIPELINE) --only 04_finetune
$(EMBEDDING): notebooks/05_metric.ipynb $(BACKBONE) $(FINETUNE) | $(STAMP) ; $(PIPELINE) --only 05_metric
$(MATCHER): $(IMAGE_MODEL) | $(STAMP) ; $(FIT)

# offline Kaggle submission: dataset (wheels, weights, the fitted matcher of RUN) + inference notebook -> dist/kaggle/
# RUN must name an existing run; its matcher is fitted (the DAG) only when it has none, never refitted.
KAGGLE_USER ?= your-kaggle-username
KAGGLE_RUNS = $(or $(patsubst runs/%/models/matcher/matcher.json,%,$(wildcard runs/*/models/matcher/matcher.json)),\
                  no fitted matcher yet (make fit RUN=<name>))
ifneq ($(filter kaggle,$(MAKECMDGOALS)),)
ifneq ($(origin RUN),command line)
$(error make kaggle RUN=<run>: name the run whose matcher to bundle; runs/ has: $(KAGGLE_RUNS))
endif
ifeq ($(wildcard $(R)/.),)
$(error make kaggle RUN=$(RUN): runs/$(RUN) not found; runs/ has: $(KAGGLE_RUNS))
endif
endif
kaggle: $(STAMP) $(if $(wildcard $(MATCHER)),,$(MATCHER))
	$(PY) -m samesame.run.kaggle --matcher $(R)/models/matcher --out dist/kaggle --owner $(KAGGLE_USER)

kaggle-run: $(STAMP)
	$(PY) -m samesame.run.rehearsal --run $(call quote,$(RUN)) --data-dir $(call quote,$(DATA_DIR)) --bundle dist/kaggle

sample: $(STAMP)
	$(PY) -m samesame.run.pipeline sample --profile $(call quote,$(PROFILE))

# a rehearsal competition, deterministic (seed 0): SCALE=1 is Kaggle's size; a stopped generation resumes
SCALE ?= 1/8
rehearsal: $(STAMP)
	$(PY) -m samesame.data.sample data/rehearsal-$(subst /,-,$(SCALE)) --scale $(SCALE)

test: $(STAMP)
	$(PY) -m pytest -m "not slow"

# what CI runs: make test, then the slow checks (pytest -m slow)
test-all: test
	$(PY) -m pytest -m slow

results: $(STAMP)
	$(PY) -m samesame.study.results $(RUNS)

bench: $(STAMP)
	$(PY) scripts/bench.py --out runs/bench/bench.json

# the gpu profile unless PROFILE is given: known answers under its precision, images/s and titles/s per epoch
gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py --profile $(if $(filter command line environment,$(origin PROFILE)),$(PROFILE),gpu) \
		$(if $(DATA_DIR),--data-dir $(call quote,$(DATA_DIR)))

data:
	@bash scripts/kaggle_data.sh data/shopee-product-matching

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=.

strip: $(STAMP)
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean-cache:
	rm -rf .cache
