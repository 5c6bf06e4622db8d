# Entry points for a fresh machine: `make demo`, `make test` (the full suite, what CI runs),
# `make test-fast` (without the end-to-end and subprocess tests marked slow) and `make lint`.
# Each creates the virtual environment when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev,text,diffusers]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/autonat demo

test: $(STAMP)
	$(BIN)/python -m pytest tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check autonat tests benchmarks tools

clean:
	rm -rf $(VENV) build *.egg-info
