# Everything installs itself: a fresh machine needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

demo: $(VENV)/.installed-demo  ## the whole product on a throwaway local Synapse
	$(BIN)/forge-notifier demo $(ARGS)

# pytest exits 5 when it collected or selected nothing (a wrong path, a -m matching no test):
# that is a failure here, said as such, never a quiet pass.
test: $(VENV)/.installed-test  ## lint, type-check, then every test (unit + end-to-end on a real Synapse)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: FAILED: pytest ran no tests (exit 5)" >&2; exit 1; fi; \
	exit $$status

lint: $(VENV)/.installed-test
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

# Benchmark-only tools stay out of the runtime deps: wrk (Debian), matplotlib, and the peer
# matrix-webhook in a venv of its own (it pins matrix-nio < 0.25).
bench: $(VENV)/.installed-test  ## intake, latency, burst, memory and a peer → docs/benchmarks.md
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
		|| echo "wrk could not be installed: the intake ceiling will be skipped"
	$(BIN)/python -m pip install --quiet 'matplotlib>=3.7'
	test -x $(VENV)/peer/bin/python || $(PYTHON) -m venv $(VENV)/peer
	$(VENV)/peer/bin/python -m pip install --quiet 'matrix-webhook==3.9.1'
	$(BIN)/python -m benchmarks.run --peer-python $(VENV)/peer/bin/python \
		--out docs/benchmarks.md $(ARGS)

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
	rm -rf $(VENV) state demo-state .pytest_cache .ruff_cache .mypy_cache
