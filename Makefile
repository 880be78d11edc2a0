# The two commands a newcomer needs: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-deps lint typecheck unit bench bench-quick clean widget-tools

# System packages (Debian) and the test Redis: scripts/setup-deps is the one place for them.
$(STAMP): pyproject.toml
	scripts/setup-deps demo
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/chat-bff demo --host 127.0.0.1 --port 8000

lint: $(STAMP)
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests

typecheck: $(STAMP)
	$(BIN)/mypy app

test-deps:
	scripts/setup-deps test

test: test-deps lint typecheck widget-tools
	$(BIN)/pytest $(PYTEST_ARGS)

# The widget's size budget is measured with terser, pinned in tests/browser/package-lock.json.
# scripts/setup-deps installs Node.js and npm; without them the size test skips (fails on CI).
widget-tools:
	@if command -v npm >/dev/null && [ ! -d tests/browser/node_modules/terser ]; then \
		cd tests/browser && npm ci --no-audit --no-fund --silent; fi

# Every performance target against its baseline in one run (about 30 minutes); writes
# bench/results/latest.{json,md}. BENCH_PROFILE=<dir> also samples the measured processes.
bench: $(STAMP)
	$(BIN)/python -m bench

# The same scenarios at tiny sizes (under 2 minutes), a smoke run whose figures are not judged;
# writes bench/results/quick.* (ignored by git).
bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
