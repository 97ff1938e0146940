# Two commands for a newcomer:  `make demo`  and  `make test`.
# Both install what they need: system packages with apt-get (when root and missing),
# Python packages into .venv in the repository root.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# MNIST / Fashion-MNIST IDX files for tests and benches (a user's own copy: --data DIR)
export ONESPIKE_DATA ?= $(abspath ../shared/data)

.PHONY: demo test test-all bench bench-boards docs system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

system-deps:
	@./.ci/system-deps

demo: system-deps $(STAMP)
	$(BIN)/onespike demo

test: system-deps $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

test-all: system-deps $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/golden_throughput.py
	$(BIN)/python bench/hdl_cycles.py
	$(BIN)/python bench/verify_speed.py

bench-boards: $(STAMP)
	$(BIN)/python bench/boards_table.py --mnist

docs: $(STAMP)
	$(BIN)/python -m onespike.hdl.generate docs/accelerator.md

clean:
	rm -rf build sim_build .pytest_cache
