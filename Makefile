# Thin aliases. `make test` is exactly what CI runs; `make demo` runs local mode end to end.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast lint bench demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install-prometheus.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	bash scripts/install-prometheus.sh
	touch $(STAMP)

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports .importlinter

# Benchmarks write docs/benchmarks/*.md; each takes minutes and wants a quiet machine.
bench: setup
	@ls bench/*.py | sed 's/^/  $(PY) /'
	@echo "run the ones you need; docs/benchmarks.md says which figure comes from which"

# Local mode on the embedded default: router + CPU pod + Prometheus + tuner, under open-loop load.
DEMO_SECONDS ?= 180
DEMO_QPS ?= 20
demo: setup
	$(PY) -m recsched_operator local crds/examples/recmodel-local-demo.yaml \
		--duration-s $(DEMO_SECONDS) --load-qps $(DEMO_QPS) --report-dir out/demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
