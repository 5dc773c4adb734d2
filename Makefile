# melstream: see README.md. Every target depends on `setup` (idempotent).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed
DATA ?= data
DATASET ?= demo
SRC ?=
PRESET ?= byol_a
WORKERS ?= 2

.PHONY: setup test shards demo bench bench-ingest bench-pipeline bench-models bench-train eval clean

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(PYTHON) -m pytest -q tests
