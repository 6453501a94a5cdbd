# One task runner: the same commands for developers and CI.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install browser test test-fast lint demo bench run

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps --target $(VENV)/legacy-duckdb 'duckdb>=2,<3'
	touch $@

install: $(VENV)/.installed

browser:                 ## Debian's headless Chromium for the report's browser tests (skipped without it)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && apt-get install -y -qq chromium; } || echo "chromium not installed: browser tests skip"

test: install browser    ## install, then run every test (slow ones included)
	$(PY) -m pytest

test-fast: install       ## skip the slow end-to-end tests
	$(PY) -m pytest -m "not slow"

lint: install            ## ruff, the import layers, then mypy (strict on every package: [tool.mypy] in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

demo: install            ## install, then run the whole pipeline offline against the bundled news site
	$(VENV)/bin/newsmon demo

run: install             ## install, then poll the feeds in ./newsmon.toml once (written by `newsmon init` if missing)
	test -f newsmon.toml || $(VENV)/bin/newsmon init
	$(VENV)/bin/newsmon run

bench: install
	$(PY) -m bench
