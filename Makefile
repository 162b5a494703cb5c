# Two commands do all set-up on a fresh machine: `make dev` and `make test` (README).
# Each installs what is missing first; the stamps make a second run skip that.

PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := devstack/node_modules/.installed
# The chat page's Firebase JS SDK (relay/package-lock.json), copied into relay/static/vendor/
# (relay/static/README.md says why); the .gitignore written into node_modules keeps it out of git.
RELAY_NODE_STAMP := relay/node_modules/.installed
# The Node app of tests/e2e/test_otlp.py: the OpenTelemetry JS SDK and its OTLP/HTTP exporter
# (tests/otlp-node/package-lock.json), kept out of git the same way.
OTLP_NODE_STAMP := tests/otlp-node/node_modules/.installed
# The browser tests (tests/relay/test_browser.py) drive Debian's Chromium: Playwright's own
# browser download needs a network the machine does not have. CI runs as root.
CHROMIUM := /usr/bin/chromium
# checkov (tests/infra) pins packages that clash with the app's, so it has its own venv,
# inside .venv/ so that git, ruff and the repo's checks skip it like the main one.
CHECKOV_VENV := $(VENV)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: dev test check install clean bench lock

# The .txt files are locks (every package pinned with its hashes), made from the .in files
# by `make lock`; pip checks every download against them.
$(PY_STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
	touch $@

$(NODE_STAMP): devstack/package.json devstack/package-lock.json devstack/.npmrc $(wildcard devstack/patches/*.patch)
	cd devstack && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(RELAY_NODE_STAMP): relay/package.json relay/package-lock.json relay/copy-vendor.mjs
	cd relay && npm ci --no-audit --no-fund --loglevel=error
	echo '*' > relay/node_modules/.gitignore
	node relay/copy-vendor.mjs
	touch $@

$(OTLP_NODE_STAMP): tests/otlp-node/package.json tests/otlp-node/package-lock.json tests/otlp-node/.npmrc
	cd tests/otlp-node && npm ci --no-audit --no-fund --loglevel=error
	echo '*' > tests/otlp-node/node_modules/.gitignore
	touch $@

$(CHROMIUM):
	test -x $@ || (apt-get update && apt-get install -y --no-install-recommends chromium)

$(CHECKOV_STAMP): infra/requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON_BOOT) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r infra/requirements-checkov.txt
	touch $@

install: $(PY_STAMP) $(NODE_STAMP) $(RELAY_NODE_STAMP) $(OTLP_NODE_STAMP)

## Run the whole stack locally (emulators, functions, relay); Ctrl-C stops it.
dev: install
	$(PY) -m devstack

# Coverage of the test process and of every Python process it starts ([tool.coverage.run]);
# measured at 96% of the lines, the floor a few points under it.
COVERAGE := --cov=shared --cov=relay --cov=functions --cov=devstack \
	--cov-report=term-missing:skip-covered --cov-fail-under=92

## Lint, format check, type check, then every test against the emulators, with coverage.
test: install $(CHROMIUM) $(CHECKOV_STAMP) check
	$(PY) -m pytest $(COVERAGE)

## Benchmarks: each prints a table and writes bench/results/<name>.json (docs/benchmarks.md).
bench: install
	$(PY) -m bench.functions
	$(PY) -m bench.ingest
	$(PY) -m bench.relay_ws
	$(PY) -m bench.relay_capacity
	$(PY) -m bench.relay_fanout
	$(PY) -m bench.golden_path
	$(PY) -m bench.load_chat
	$(PY) -m bench.access_check
	$(PY) -m bench.fleet
	$(PY) -m bench.usage_read
	$(PY) -m bench.budget_tick
	$(PY) -m bench.dashboard_paint

## Re-resolve the locks after a change to a .in file (README, "Dependencies"). Versions
## already locked are kept; `make lock LOCK_FLAGS=--upgrade` moves every package to its newest.
## One lock serves every Python from 3.11 (this machine) on, 3.12 (deployed) included.
LOCK_FLAGS ?=
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
	--generate-hashes --no-strip-extras --custom-compile-command "make lock" $(LOCK_FLAGS)
lock: $(PY_STAMP)
	$(UV_COMPILE) requirements.in -o requirements.txt
	$(UV_COMPILE) requirements-dev.in -o requirements-dev.txt
	$(UV_COMPILE) infra/requirements-checkov.in -o infra/requirements-checkov.txt

check: $(PY_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) devstack/node_modules relay/node_modules tests/otlp-node/node_modules .devstack .mypy_cache .ruff_cache
	rm -f .coverage .coverage.*
