# Two commands do all set-up on a fresh machine: `make dev` and `make test` (README).
# Each installs what is missing first; the stamps make a second run skip that.

PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := devstack/node_modules/.installed

.PHONY: dev test check install clean

$(PY_STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(NODE_STAMP): devstack/package.json devstack/package-lock.json $(wildcard devstack/patches/*.patch)
	cd devstack && npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(PY_STAMP) $(NODE_STAMP)

## Run the whole stack locally (emulators, functions, relay); Ctrl-C stops it.
dev: install
	$(PY) -m devstack

## Lint, format check, type check, then every test against the emulators.
test: install check
	$(PY) -m pytest

check: $(PY_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) devstack/node_modules .devstack .mypy_cache .ruff_cache
