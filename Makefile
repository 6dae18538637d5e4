# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint bench browser clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip check
	touch $(STAMP)

## Run the main job on the embedded default (generated demo corpus, local Ray, local folder).
demo: $(STAMP)
	$(BIN)/diffgmm demo --workdir demo

## Run the whole test suite (the report test opens HTML in a real headless Chromium), after the linters.
test: $(STAMP) browser lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The edit loop: no Ray, no browser, nothing marked slow (markers in pyproject.toml).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not ray and not browser" $(PYTEST_ARGS)

## Import layers (import-linter contracts in pyproject.toml) and ruff's lint rules.
lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Headless Chromium from Debian, for the report test; skipped when one is on PATH.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing Debian's chromium (needs root)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

bench: $(STAMP)
	$(BIN)/python bench/model_throughput.py

clean-venv:
	rm -rf $(VENV)
