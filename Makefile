# polyrec developer tasks. `make test` and `make demo` create .venv and install everything on first use;
# they reinstall only when pyproject.toml or the plugin template changed (stamp file).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.polyrec-installed
# Pinned here, not in pyproject: pip on this machine takes these builds from local disk,
# while a plain `torch` would download a CUDA build.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
TEMPLATE := examples/plugin-template
TEMPLATE_SOURCES := $(TEMPLATE)/pyproject.toml $(shell find $(TEMPLATE)/src -name '*.py' 2>/dev/null)

.PHONY: install test lint format demo bench load scale browser speech

install: $(STAMP)

# The template is installed like a third-party plugin (not editable), so tests see what users get.
$(STAMP): pyproject.toml $(TEMPLATE_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH_PINS) -e '.[all,ray,dev]'
	$(PY) -m pip install ./$(TEMPLATE)
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(PY) -m pytest

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The end-to-end demo, offline: generated catalog and users -> ingest, fit, recommend -> quickstart-out/report.html.
demo: install
	$(BIN)/polyrec quickstart

# Speed checks: every bench/bench_*.py prints ratios against a baseline measured in the same run.
bench: install
	@scripts="$(wildcard bench/bench_*.py)"; \
	if [ -z "$$scripts" ]; then echo "no bench/bench_*.py scripts yet" >&2; exit 1; fi; \
	for script in $$scripts; do echo "== $$script"; $(PY) $$script || exit 1; done

load: install
	@if [ ! -f bench/load_test.py ]; then echo "bench/load_test.py is not written yet" >&2; exit 1; fi
	$(PY) bench/load_test.py

# Two-node Ray on this machine, the worker node killed part way through an ingest (minutes; not in `make test`).
scale: install
	$(PY) bench/scale_test.py

# Headless Chromium (Debian's package) for tests/test_web_page.py, which skips without it. Idempotent.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update && $$sudo apt-get install -y chromium; }
	@chromium --version 2>/dev/null

# Debian's espeak-ng, which says words in many voices: real speech for tests/test_encoder_audio.py
# (skipped without it) and bench/bench_audio_features.py. Idempotent.
speech:
	@command -v espeak-ng >/dev/null 2>&1 || { \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update && $$sudo apt-get install -y espeak-ng; }
	@espeak-ng --version 2>/dev/null
