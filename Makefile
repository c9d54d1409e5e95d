# XTTS Lab: `make run` starts the app, `make test` runs the test suite.
# Both create .venv (Python 3.11) on first use and install the exact versions of requirements*.lock,
# reinstalling only when a lock changes. `make lock` regenerates the locks from requirements*.txt.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
ARGS   ?=
# Debian packages: ffmpeg for decoding (torchcodec needs its libraries, whisper its binary);
# espeak-ng renders test speech; chromium + chromium-driver run the browser tests.
# Each entry is package:command-it-provides.
RUN_DEBS  := ffmpeg:ffmpeg
TEST_DEBS := ffmpeg:ffmpeg espeak-ng:espeak-ng chromium:chromium chromium-driver:chromedriver

# $(call ensure_debs,entries,required): install missing packages with apt-get when root on Debian,
# otherwise print the command; fail only when a package in `required` is still missing.
define ensure_debs
	@missing=""; for entry in $(1); do \
		command -v "$${entry#*:}" >/dev/null 2>&1 || missing="$$missing $${entry%%:*}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing system packages:$$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
		else \
			echo "Missing system packages:$$missing"; \
			echo "  Debian/Ubuntu: sudo apt-get install$$missing"; \
			for need in $(2); do case " $$missing " in *" $$need "*) \
				echo "$$need is required; install it and run make again."; exit 1;; esac; done; \
			echo "  (continuing: tests that need them are skipped)"; \
		fi; \
	fi
endef

.PHONY: run tiny test lint format bench bench-gpu lock clean-venv run-deps test-deps

run: $(VENV)/.installed run-deps
	$(PY) main_launcher.py $(ARGS)

tiny: $(VENV)/.installed run-deps
	$(PY) main_launcher.py --tiny-models $(ARGS)

test: $(VENV)/.installed-dev test-deps
	$(PY) -m pytest $(ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.installed run-deps
	$(PY) -m bench $(ARGS)

# Every GPU row in one run (~8 min on one H100; see docs/performance.md). On a CPU: ARGS=--dry proves the plumbing.
bench-gpu: $(VENV)/.installed run-deps
	$(PY) -m bench --only gpu $(ARGS)

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 (Debian: apt-get install python3.11 python3.11-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamp files: pip runs again only when a lock is newer than the last install. The locks pin every
# transitive package; requirements*.txt are the hand-edited direct dependencies they are made from.
$(VENV)/.installed: requirements.lock | $(VENV)/bin/python
	$(PY) -m pip install -r requirements.lock
	$(PY) -m pip check
	touch $@

$(VENV)/.installed-dev: requirements.lock requirements-dev.lock | $(VENV)/bin/python
	$(PY) -m pip install -r requirements-dev.lock
	$(PY) -m pip check
	touch $(VENV)/.installed $@

# uv only resolves the locks; pip installs them (it honours the machine's pip configuration).
UV_VERSION := 0.13.9
UV_COMPILE := $(VENV)/bin/uv pip compile --quiet --python-version 3.11 --universal --override requirements-overrides.txt

# `make lock` re-resolves after an edit of requirements*.txt, keeping every locked version it can;
# `make lock ARGS="-P transformers==5.23.1"` upgrades one package, `ARGS=--upgrade` all of them.

lock: | $(VENV)/bin/python
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(UV_COMPILE) $(ARGS) requirements.txt -o requirements.lock
	$(UV_COMPILE) $(ARGS) requirements-dev.txt -c requirements.lock -o requirements-dev.lock
	@echo "Locks written; run make test to install and check them."


run-deps:
	$(call ensure_debs,$(RUN_DEBS),ffmpeg)

test-deps:
	$(call ensure_debs,$(TEST_DEBS),ffmpeg)

clean-venv:
	rm -rf $(VENV)
