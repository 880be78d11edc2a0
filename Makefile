# The two commands a newcomer needs: `make demo` and `make test`; `make unit` while editing.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo venv unit test test-deps test-latest lint typecheck bench bench-quick clean widget-tools

# Everything Python comes from uv.lock (hashes checked), whatever has been released since:
# first the uv it pins (scripts/uv-bootstrap.txt), then `uv sync --locked`. The demo gets the
# runtime dependencies only; the tests and tools the developer set too. scripts/lock is the one
# way to change a pin; `make test-latest` tries the newest releases first.
# System packages (Debian) and the test Redis: scripts/setup-deps is the one place for them.
UV := $(BIN)/uv
SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(UV) sync --locked --quiet
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed

$(UV): scripts/uv-bootstrap.txt
	scripts/setup-deps demo
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		-r scripts/uv-bootstrap.txt
	touch $(UV)

# --inexact: a demo after `make test` leaves the developer set in place.
$(RUNTIME): uv.lock pyproject.toml $(UV)
	$(SYNC) --inexact
	touch $(RUNTIME)

$(DEV): uv.lock pyproject.toml $(UV)
	$(SYNC) --extra dev
	touch $(RUNTIME) $(DEV)

venv: $(DEV)

# `make demo PORT=8080` when 8000 is taken.
PORT ?= 8000
demo: $(RUNTIME)
	$(BIN)/chat-bff demo --host 127.0.0.1 --port $(PORT)

lint: $(DEV)
	$(BIN)/ruff check app harness tests bench
	$(BIN)/ruff format --check app harness tests bench

typecheck: $(DEV)
	$(BIN)/mypy app harness

test-deps:
	scripts/setup-deps test

# The fast lane, under 30 s: the in-process tests only (tests/unit; its conftest refuses any
# process or socket). No lint, no mypy, no Redis or browser: `make test` remains the verdict.
unit: $(DEV)
	$(BIN)/pytest -p no:xdist tests/unit -q $(PYTEST_ARGS)

# Two workers (pytest-xdist): most tests wait on servers, not the CPU. A file's tests stay on one
# worker, so its servers start once. `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2
test: test-deps lint typecheck widget-tools
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The widget's size budget is measured with terser, pinned in tests/browser/package-lock.json.
# scripts/setup-deps installs Node.js and npm; without them the size test skips (fails on CI).
widget-tools:
	@if command -v npm >/dev/null && [ ! -d tests/browser/node_modules/terser ]; then \
		cd tests/browser && npm ci --no-audit --no-fund --silent; fi

# Every performance target against its baseline in one run (about 45 minutes); writes
# bench/results/latest.{json,md}. BENCH_PROFILE=<dir> also samples the measured processes.
bench: $(DEV)
	$(BIN)/python -m bench

# The same scenarios at tiny sizes (about 8 minutes: Redis Cluster and Sentinel start-ups and
# failovers take most), a smoke run whose figures are not judged;
# writes bench/results/quick.* (ignored by git).
bench-quick: $(DEV)
	$(BIN)/python -m bench --quick

# Not part of CI's verdict: the suite against the newest releases pyproject.toml allows, in
# .venv-latest, and the pins a `scripts/lock --upgrade` would move. Says what the next bump breaks.
test-latest: test-deps $(DEV) widget-tools
	scripts/test-latest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venv-latest .pytest_cache .mypy_cache .ruff_cache
