# melstream -- see README.md.  Every target depends on `setup` (idempotent).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
APT_PACKAGES ?=

DATA ?= data
DATASET ?= demo
SRC ?=
PRESET ?= byol_a
WORKERS ?= 2
OUT ?= $(DATA)/$(DATASET)
METHOD ?= temporal_gap
RUN ?= runs/demo
STEPS ?= 300
# `make demo`: a contrastive method that learns within minutes on 2 CPU cores (COLA on the mobile encoder).
DEMO_TRAIN ?= --method cola --encoder mobile --batch-size 64 --steps 400 --save-every 200 --num-workers 1 \
	--probe-every 100 --probe-task demo_family --probe-data-root $(DATA)
DEMO_TASKS ?= demo_family,demo_pitch,demo_timbre

.PHONY: setup test shards demo pretrain pretrain-ddp eval bench bench-ingest bench-pipeline bench-models bench-train bench-eval clean

$(STAMP):
	@if [ -n "$(APT_PACKAGES)" ]; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	    else echo "please install:$$missing (apt-get)"; fi; fi; fi
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(PYTHON) -m pytest -q tests

# `make shards` builds the demo shard set; `make shards DATASET=folder SRC=/path/to/audio` ingests a folder.
shards: setup
ifeq ($(DATASET),demo)
	$(PYTHON) -m ingest demo --out $(DATA)/demo --audio-dir $(DATA)/demo_audio --preset $(PRESET) --workers $(WORKERS) --shard-size 64
else ifeq ($(DATASET),folder)
	@test -n "$(SRC)" || { echo "usage: make shards DATASET=folder SRC=/path/to/audio [OUT=data/NAME] [PRESET=byol_a]"; exit 2; }
	$(PYTHON) -m ingest folder "$(SRC)" --out $(OUT) --preset $(PRESET) --workers $(WORKERS)
else
	@echo "DATASET=$(DATASET): use demo or folder here; AudioSet/FSD50K: see docs/datasets.md"; exit 2
endif

pretrain: setup
	$(BIN)/accelerate launch --num_processes 1 --cpu train/pretrain.py --method $(METHOD) --out $(RUN) --steps $(STEPS)

# Two CPU ranks (gloo).  `accelerate launch --cpu --num_processes 2` silently starts ONE process;
# this form starts two (asserted by tests/test_train_ddp.py).
pretrain-ddp: setup
	ACCELERATE_USE_CPU=true $(BIN)/accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
	  --mixed_precision no --dynamo_backend no train/pretrain.py --method $(METHOD) --out $(RUN)-ddp --steps $(STEPS)

# the demo tasks on the latest demo run, against the untrained encoder and the spectrogram baseline
eval: setup
	$(PYTHON) -m eval run --model $(RUN) --model untrained,spectrogram --tasks $(DEMO_TASKS) --data-root $(DATA) --out reports/demo

demo: setup
	$(MAKE) shards
	$(PYTHON) train/pretrain.py $(DEMO_TRAIN) --out $(RUN)
	$(MAKE) eval

bench: bench-ingest bench-pipeline bench-models bench-train bench-eval

bench-ingest: setup
	$(PYTHON) bench/bench_ingest.py
	@if [ -f bench/bench_audioset.py ]; then $(PYTHON) bench/bench_audioset.py; fi

bench-pipeline: setup
	$(PYTHON) bench/bench_pipeline.py --data $(DATA)/bench_pipeline --out bench/results/pipeline.json

bench-models: setup
	$(PYTHON) bench/bench_models.py

bench-train: setup
	$(PYTHON) bench/bench_train.py

bench-eval: setup
	$(PYTHON) bench/bench_eval.py

clean:
	rm -rf $(DATA)/demo $(DATA)/demo_audio $(DATA)/bench_pipeline runs/demo reports/demo
