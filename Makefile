# Thin aliases. `make test` is exactly what CI runs; `make demo` runs local mode end to end.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast lint bench demo clean reproduce

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

# Local mode, scripted (issue 16): the demo RecModel (NCF on a CPU pool of 2 workers and an
# emulated GPU pod with the H200 profile) from a poor static config (4-item requests, no offload)
# through steady load, a load step and a shift to large queries; writes out/demo/report.md,
# tuning.png and summary.json. DEMO_SECONDS shortens it (at least 45); DEMO_EDIT_TARGET_MS adds a
# last phase that edits the manifest's p95 target while it runs.
DEMO_SECONDS ?= 150
DEMO_QPS ?= 20
DEMO_EDIT_TARGET_MS ?=
demo: setup
	$(PY) -m recsched_operator local crds/examples/recmodel-local-demo.yaml --scenario demo \
		--duration-s $(DEMO_SECONDS) --load-qps $(DEMO_QPS) \
		$(if $(DEMO_EDIT_TARGET_MS),--edit-target-ms $(DEMO_EDIT_TARGET_MS)) \
		--gpu-profile nvidia-h200 --run-dir .recsched/demo --report-dir out/demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Issue 13's headline: section 1 on the simulator (docs/benchmarks/headline.md and the top of
# docs/benchmarks.md; 6 min on 2 cores with --jobs 2), section 2 on real pods
# (docs/benchmarks/real_capacity.md, 9-15 min per model at 3 rounds, each model in its own hold
# of the bench lock) and, with PEERS=1, section 3 beside MLServer (docs/benchmarks/peers.md,
# 23 min; installs MLServer in its own venv under bench/.scratch). Sections 2 and 3 measure real
# processes, so they take the bench lock. Measured end to end with PEERS=1 on a quiet machine:
# 53 min (about 30 without PEERS); REPRODUCE_ROUNDS=2 shortens section 2 by about a third.
REPRODUCE_SEEDS ?= 3
REPRODUCE_ROUNDS ?= 3
PEERS ?= 0
reproduce: setup
	nice -n 10 $(PY) bench/headline.py --seeds $(REPRODUCE_SEEDS) --jobs 2
	flock /tmp/recsched-bench.lock $(PY) bench/real_capacity.py --models rmc1 \
		--rounds $(REPRODUCE_ROUNDS)
	flock /tmp/recsched-bench.lock $(PY) bench/real_capacity.py --models wnd --append \
		--rounds $(REPRODUCE_ROUNDS)
	@if [ "$(PEERS)" = 1 ]; then flock /tmp/recsched-bench.lock $(PY) bench/peers.py all; \
	else echo "section 3 skipped: run 'make reproduce PEERS=1' to compare with MLServer"; fi
