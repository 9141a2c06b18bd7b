# Two commands on a fresh machine: `make demo` (the app on the bundled model) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# glibc otherwise spends most of the time of big-image inference in mmap/munmap.
export MALLOC_MMAP_MAX_ := 0
export MALLOC_TRIM_THRESHOLD_ := 100000000000

.PHONY: setup system-deps demo lint test test-fast bench

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# Debian packages the tests use: Chromium (browser test of the app) and Tesseract (OCR check).
system-deps:
	@if ! command -v chromium >/dev/null || ! command -v tesseract >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq chromium tesseract-ocr >/dev/null; fi

demo: $(STAMP)
	$(PY) app.py

# ruff (configured in pyproject.toml); CI runs it before the tests (.ci/run). Checks only: it rewrites nothing.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The full suite, as CI runs it (.ci/run).
test: $(STAMP) system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# The quick loop: everything but the slow and the browser tests.
test-fast: $(STAMP) system-deps
	$(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/models.py
