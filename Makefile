# Two commands: `make run` serves with the embedded defaults; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
WEB_DEPS := web/node_modules/.installed
PIP_TOOLS := pip-tools==7.6.2

.PHONY: run test lint lock bench demo clean chromium

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
	touch $(STAMP)

$(WEB_DEPS): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $(WEB_DEPS)

# Browser tests drive Debian's Chromium (Playwright's own browser download does not work here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: $(STAMP) $(WEB_DEPS)
	$(PY) run.py

test: lint $(WEB_DEPS) chromium
	$(PY) -m pytest

# ruff, then the import contract in .importlinter (layers point down; edges never import storage).
lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports --no-cache

# The demo catalog (every movie and episode playable) and a demo viewer whose password is printed once.
demo: $(STAMP) $(WEB_DEPS)
	$(PY) run.py demo

# Regenerate the lock (requirements.txt: the whole tree pinned, with hashes) from requirements.in, keeping
# today's pins unless asked (make lock LOCK_ARGS="--upgrade-package tornado"). pip-tools runs from a throwaway
# venv, so it is no dependency of the project, and reads PyPI only: no machine-local pip configuration.
lock:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && $(PYTHON) -m venv "$$tmp" && \
	export PIP_CONFIG_FILE=/dev/null && unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL && \
	"$$tmp/bin/pip" install --quiet --disable-pip-version-check $(PIP_TOOLS) && \
	CUSTOM_COMPILE_COMMAND="make lock" "$$tmp/bin/pip-compile" --quiet --generate-hashes --strip-extras \
		--allow-unsafe $(LOCK_ARGS) --output-file requirements.txt requirements.in

bench: $(STAMP)
	$(PY) bench/healthz.py

clean:
	rm -rf $(VENV) var .pytest_cache
