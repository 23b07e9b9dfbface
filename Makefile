# Everything installs itself: a fresh machine needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

demo: $(VENV)/.installed-demo  ## the whole product on a throwaway local Synapse
	$(BIN)/forge-notifier demo $(ARGS)

test: $(VENV)/.installed-test  ## lint, then every test (unit + end-to-end on a real Synapse)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(VENV)/.installed-test  ## end-to-end latency against a real Synapse
	$(BIN)/python -m benchmarks.e2e_latency $(ARGS)

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,demo]'
	touch $@ $(VENV)/.installed-demo

clean:
	rm -rf $(VENV) state demo-state .pytest_cache .ruff_cache
