# Two entry points, each self-contained on a fresh machine with only Python 3.11:
#   make demo   sets up .venv and runs the main job on the embedded default (CPU, no downloads
#               beyond package registries)
#   make test   sets up .venv and runs the test suite (slow tests excluded)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edgerl-installed

# torch is pinned in the same pip command as torch-pruning: unpinned, pip pulls a multi-GB CUDA
# build of torch. torch==2.13.0 resolves to a local CPU build on the development machines.
TORCH  ?= torch==2.13.0

.PHONY: demo test test-all lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[train,atari,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python tools/demo.py

test: $(STAMP)
	$(BIN)/ruff check edgerl tests tools
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check edgerl tests tools

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
