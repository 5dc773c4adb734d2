# melstream -- see README.md.  Every target depends on `setup` (idempotent).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
# Installs come from the lock (requirements.lock, made by `make lock`), through a pinned uv.
UV_VERSION := 0.13.9
UV_HOME := .tools/uv-$(UV_VERSION)
UV := $(UV_HOME)/bin/uv
EXTRAS ?=
LOCK := $(if $(filter all,$(EXTRAS)),requirements-all.lock,requirements.lock)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha1sum | cut -c1-12)
export UV_PYTHON_DOWNLOADS := never
APT_PACKAGES ?=
# Debian packages of the third-party audio corpus: `make test` builds a tiny one (tests/test_bench_real.py,
# ~10 MB of packages); `make bench-real` the full one (adds ~260 MB: FluidR3 GM soundfont, Hydrogen drum kits)
REAL_APT_TINY := espeak-ng fluidsynth timgm6mb-soundfont
REAL_APT := $(REAL_APT_TINY) fluid-soundfont-gm hydrogen-drumkits sound-theme-freedesktop

DATA ?= data
DATASET ?= demo
SRC ?=
PRESET ?=
# empty: the CLI's default frontend (shards.frontend.DEFAULT_PRESET); PRESET=hares etc. to choose
PRESET_ARG = $(if $(PRESET),--preset $(PRESET))
WORKERS ?= 2
OUT ?= $(DATA)/$(DATASET)
METHOD ?= temporal_gap
RUN ?= runs/demo
STEPS ?= 300
# extra trainer flags, e.g. `make demo TRAIN_FLAGS=--overwrite` to replace the run in $(RUN) (docs/sharing.md)
TRAIN_FLAGS ?=
# `make demo`: a contrastive method that learns within minutes on 2 CPU cores (COLA on the mobile encoder).
DEMO_TRAIN ?= --method cola --encoder mobile --batch-size 64 --steps 400 --save-every 200 --num-workers 1 \
	--probe-every 100 --probe-task demo_family --probe-data-root $(DATA)
DEMO_TASKS ?= demo_family,demo_pitch,demo_timbre

.PHONY: setup apt check-lock lock test readme-check gpu-check shards shards-varied demo pretrain pretrain-ddp eval bench bench-ingest bench-pipeline bench-models bench-memory-format bench-train bench-eval bench-methods bench-real clean

$(UV):
	$(PY) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

apt:
	@if [ -n "$(APT_PACKAGES)" ]; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	    else echo "please install:$$missing (apt-get)"; fi; fi; fi

# Every run brings the venv back to the lock (a package upgraded or downgraded by hand is reinstalled
# at the locked version; about a second when nothing differs), then checks it.
setup: $(UV) apt
	test -x $(PYTHON) || $(UV) venv -q --python "$$(command -v $(PY))" $(VENV)
	$(UV) pip install -q --python $(PYTHON) --require-hashes -r $(LOCK)
	@test -f $(STAMP) || { $(UV) pip install -q --python $(PYTHON) --no-deps -e . && rm -f $(VENV)/.installed-* && touch $(STAMP); }
	@$(PYTHON) tests/lockcheck.py $(LOCK)

check-lock: setup

# Re-resolve the locks (run after editing dependencies in pyproject.toml or constraints.txt).
# Existing pins are kept where they still fit; `make lock UPGRADE=1` moves everything to the newest.
# A new torch must be paired with the torchaudio built against it: change constraints.txt, `make lock`,
# then `make test` (tests/test_install.py loads torchaudio's compiled ops).
lock: $(UV)
	$(UV) pip compile -q pyproject.toml --all-extras --universal --generate-hashes -c constraints.txt \
	  --python-version 3.10 --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) -o requirements-all.lock
	cp requirements-all.lock requirements.lock.tmp
	$(UV) pip compile -q pyproject.toml --extra dev --universal --generate-hashes -c constraints.txt \
	  --python-version 3.10 --custom-compile-command "make lock" -o requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock


# Lint + import order (ruff) and types (mypy on shards/ and models/), configured in pyproject.toml, then the tests.
test: APT_PACKAGES += $(REAL_APT_TINY)
# pytest runs in TEST_WORKERS processes (pytest-xdist), one test file per worker at a time (--dist loadfile:
# a module's fixtures are built once).  2 matches the CI machine; TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(PYTHON) -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile) tests

# The README's quick tour (```bash tour blocks), run in a scratch directory; README_STEPS shortens training
# (0: every command exactly as written).  tests/test_readme_commands.py (in `make test`) checks that they parse.
README_STEPS ?= 20
readme-check: setup
	$(PYTHON) tests/readme_check.py --steps $(README_STEPS)

# `make shards` builds the demo shard set; `make shards DATASET=folder SRC=/path/to/audio` ingests a folder.
shards: setup
ifeq ($(DATASET),demo)
	$(PYTHON) -m ingest demo --out $(DATA)/demo --audio-dir $(DATA)/demo_audio $(PRESET_ARG) --workers $(WORKERS) --shard-size 64
else ifeq ($(DATASET),folder)
	@test -n "$(SRC)" || { echo "usage: make shards DATASET=folder SRC=/path/to/audio [OUT=data/NAME] [PRESET=name]"; exit 2; }
	$(PYTHON) -m ingest folder "$(SRC)" --out $(OUT) $(PRESET_ARG) --workers $(WORKERS)
else
	@echo "DATASET=$(DATASET): use demo or folder here; AudioSet/FSD50K: see docs/datasets.md"; exit 2
endif

# the varied demo corpus (6 families, nuisances, source-disjoint train/test): data/demo_varied{,_audio}
shards-varied: setup
	$(PYTHON) -m ingest demo --variant varied --out $(DATA)/demo_varied --audio-dir $(DATA)/demo_varied_audio \
	  $(PRESET_ARG) --workers $(WORKERS) --shard-size 64

pretrain: setup
	$(BIN)/accelerate launch --num_processes 1 --cpu train/pretrain.py --method $(METHOD) --out $(RUN) --steps $(STEPS) $(TRAIN_FLAGS)

# Two CPU ranks (gloo).  `accelerate launch --cpu --num_processes 2` silently starts ONE process;
# this form starts two (asserted by tests/test_train_ddp.py).
pretrain-ddp: setup
	ACCELERATE_USE_CPU=true $(BIN)/accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
	  --mixed_precision no --dynamo_backend no train/pretrain.py --method $(METHOD) --out $(RUN)-ddp --steps $(STEPS) $(TRAIN_FLAGS)

# the demo tasks on the latest demo run, against the untrained encoder and the spectrogram baseline
eval: setup
	$(PYTHON) -m eval run --model $(RUN) --model untrained,spectrogram --tasks $(DEMO_TASKS) --data-root $(DATA) --out reports/demo

demo: setup
	$(MAKE) shards
	$(PYTHON) eval/pretrain.py $(DEMO_TRAIN) --out $(RUN) $(TRAIN_FLAGS)
	$(MAKE) eval

bench: bench-ingest bench-pipeline bench-models bench-train bench-eval

bench-ingest: setup
	$(PYTHON) bench/bench_ingest.py
	@if [ -f bench/bench_audioset.py ]; then $(PYTHON) bench/bench_audioset.py; fi

bench-pipeline: setup
	$(PYTHON) bench/bench_pipeline.py --data $(DATA)/bench_pipeline --out bench/results/pipeline.json
	$(PYTHON) bench/bench_plan.py

bench-models: setup
	$(PYTHON) bench/bench_models.py

bench-memory-format: setup
	$(PYTHON) bench/bench_models.py --threads 1 --layouts contiguous,channels_last \
		--encoders mobile audio_ntt audio_ntt2022 efficientnet_b0 --out bench/results/memory_format.json

bench-train: setup
	$(PYTHON) bench/bench_train.py

bench-eval: setup
	$(PYTHON) bench/bench_eval.py

# GPU acceptance (issue 13): on a CUDA machine, every CUDA path end to end in under 8 minutes ->
# bench/results/gpu.json + a summary; without CUDA one line and exit 0.  GPU_CHECK_ARGS: e.g. --methods byol_a
gpu-check: setup
	$(PYTHON) bench/gpu_check.py $(GPU_CHECK_ARGS)
# Every registered method, on its paper encoder and on audio_ntt d=512, for MINUTES of wall clock each on the
# demo shards, then linear probe + kNN vs the same encoder untrained and the spectrogram (README table).
# CORPUS=varied (default: the varied demo corpus and its tasks) or basic (the make-shards corpus).
# JOBS runs side by side (default 2: one torch thread each on 2 cores).
MINUTES ?= 4
CORPUS ?= varied
JOBS ?= 2
bench-methods: setup
ifeq ($(CORPUS),varied)
	test -f $(DATA)/demo_varied/pretrain/manifest.json || $(MAKE) shards-varied
else
	test -f $(DATA)/demo/pretrain/manifest.json || $(MAKE) shards
endif
	$(PYTHON) bench/bench_methods.py --minutes $(MINUTES) --data $(DATA) --corpus $(CORPUS) --jobs $(JOBS)

# The third-party audio benchmark (docs/bench-real.md): builds data/real_audio from Debian packages
# (bench/real_corpus.py; once), ingests its pretraining clips into data/real/pretrain (once), then the methods
# bench on the six real_* tasks; per-task table -> bench/results/methods_real.{json,md} and docs/bench-real.md.
# REAL_ARGS: extra bench_methods.py arguments, e.g. REAL_ARGS="--methods byol_a --variants shared".
REAL_ARGS ?=
bench-real: APT_PACKAGES += $(REAL_APT)
bench-real: setup
	test -f $(DATA)/real_audio/corpus.json || $(PYTHON) bench/real_corpus.py --out $(DATA)/real_audio --workers $(WORKERS)
	test -f $(DATA)/real/pretrain/manifest.json || $(PYTHON) -m ingest folder $(DATA)/real_audio/pretrain \
	  --out $(DATA)/real --split pretrain --dataset real $(PRESET_ARG) --workers $(WORKERS)
	$(PYTHON) bench/bench_methods.py --minutes $(MINUTES) --data $(DATA) --corpus real --jobs $(JOBS) \
	  --doc docs/bench-real.md $(REAL_ARGS)

clean:
	rm -rf $(DATA)/demo $(DATA)/demo_audio $(DATA)/demo_varied $(DATA)/demo_varied_audio $(DATA)/bench_pipeline runs/demo reports/demo runs/bench_methods \
	  $(DATA)/real $(DATA)/real_audio $(DATA)/real_audio.partial
