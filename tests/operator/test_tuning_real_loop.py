"""Issue 5's real loop: a real pod, a real Prometheus, the load generator, and the tuner.

An RMC1 pod (scale 0.01, 2 workers) starts at B = 1024 under constant load, warmed up for
10 s. Every ~11 s the tuner observes a 10 s window through `PrometheusSource`, decides, and
pushes a changed config to the pod's `PUT /admin/config`. Asserted, all behaviour: a real p95
read from Prometheus, the config left its start (B = 1024), every push acknowledged as applied
and the last one served by the pod, every decision logged with its reason. The loop stops once
a config other than the start has been measured over at least two windows, or after 3 minutes.

The p95 gain (first window at B = 1024 against that settled config's windows) is a benchmark
figure, not a pass mark: run with `RECSCHED_TEST_FIGURES_DIR=DIR` and each run appends its
figures to `DIR/tuner_real_loop.json` (`support.figures`); docs/benchmarks/tuner_real_loop.md
records them with run count and spread. The sleeps here are the loop's cadence (a warm-up under
load, one window, one tuning interval), not waits for a condition.

What the tuner can win here is a query split across both workers at once, which the pod's
pinned workers (its default on 2 CPUs) make real. Measured with this workload (production
sizes, Poisson 15 QPS, a warmed pod, docs/benchmarks/batch_landscape.md): the pod's p95 was
18.1 ms at B = 1024 and 13.4-14.5 ms at B = 128-512 (medians of 3 rounds, -20% to -26%), so the
target of 15 ms sits between the start and the best configs, while single 10 s windows of one
config ranged over +-20%: a 30% fall is more than this machine offers, and whether the first
window lands above the target is chance.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsched_operator.tuner import (
    KnobConfig,
    Observation,
    SloTarget,
    TuningBounds,
    TuningSettings,
    decide_next_config,
    initial_state,
)
from recsched_operator.tuner.prometheus_source import PrometheusSource
from support.figures import record_figures
from support.pod_process import start_pod_process, stop_process
from support.prometheus_server import requires_prometheus, running_prometheus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    requires_prometheus,
    pytest.mark.skipif(
        importlib.util.find_spec("recsched_pod") is None
        or importlib.util.find_spec("recsched_loadtest") is None,
        reason="needs the inference pod and the load generator",
    ),
]
logger = logging.getLogger("recsched.real_loop")

RECMODEL = "real-loop"
TOKEN = "real-loop-token"
WORKERS = 2
RATE_QPS = 15.0
SIZES = "production"  # lognormal mu 5.1 sigma 0.8, clipped 1..1024
SLO = SloTarget(percentile=95, target_ms=15.0, window_s=10.0)
# 10 s windows at 15 QPS hold ~150 queries: QPS read from them wanders +-10%, so comparisons
# tolerate 25% before they are voided and drift needs 50% (the defaults suit 30 s windows).
SETTINGS = TuningSettings(
    cooldown_s=1.0, min_samples=80, comparable_load_fraction=0.25, load_drift_fraction=0.5
)
BOUNDS = TuningBounds(batch_min=1, batch_max=1024, threshold_min=1025, threshold_max=1025)
STEP_S = SLO.window_s + SETTINGS.cooldown_s
BUDGET_S = 180.0
# A pod's first seconds of traffic run slower (B = 1024 read 27.6 ms in a first window and
# 17.2 ms warmed, docs/benchmarks/batch_landscape.md): the first window measured starts after this
# much load, so the baseline is the steady state at B = 1024.
WARMUP_S = 10.0


@contextlib.contextmanager
def rmc1_pod(tmp_path: Path) -> Iterator[tuple[str, int]]:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {"generation": 1, "batchSize": 1024, "offloadThreshold": 1025, "workers": WORKERS}
        )
    )
    token = tmp_path / "token"
    token.write_text(TOKEN)
    args = ["--model", "rmc1", "--scale", "0.01", "--workers", str(WORKERS)]
    args += ["--config", str(config), "--admin-token-file", str(token)]
    args += ["--recmodel", RECMODEL, "--log-level", "WARNING"]
    pod = start_pod_process(args, tmp_path / "pod.log", ready_timeout_s=120.0)
    try:
        yield pod.url, pod.port
    finally:
        stop_process(pod.process)


@contextlib.contextmanager
def constant_load(url: str, duration_s: float) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recsched_loadtest",
            "run",
            "--url",
            url,
            "--model",
            "rmc1",
            "--rate",
            str(RATE_QPS),
            "--sizes",
            SIZES,
            "--duration-s",
            str(duration_s),
            "--arrivals",
            "poisson",
            "--seed",
            "5",
            "--quiet",
            "--json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        stop_process(process)


def floor_met(first_ms: float, settled_ms: float) -> bool:
    """Issue 5's floor, reported with the figures: p95 fell by >= 30%, or below the target from
    above it."""
    below_target = first_ms > SLO.target_ms >= settled_ms
    return settled_ms <= 0.7 * first_ms or below_target


def push_config(url: str, config: KnobConfig, generation: int) -> dict[str, object]:
    """PUT the config document; the pod's answer."""
    body = json.dumps(
        {
            "generation": generation,
            "batchSize": config.batch_size,
            "offloadThreshold": config.offload_threshold,
            "workers": WORKERS,
        }
    ).encode()
    request = urllib.request.Request(
        f"{url}/admin/config",
        data=body,
        method="PUT",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        answer: dict[str, object] = json.load(reply)
    return answer


def test_tuner_steps_a_real_rmc1_pod_from_batch_1024_and_logs_every_decision(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=logger.name)
    with (
        rmc1_pod(tmp_path) as (url, port),
        running_prometheus(targets=[f"127.0.0.1:{port}"], scrape_interval_s=1.0) as prom,
        constant_load(url, WARMUP_S + BUDGET_S + 60),
    ):
        prom.wait_for_targets_up(1)
        source = PrometheusSource(prom.url, timeout_s=5.0)
        start = KnobConfig(1024, 1025)
        state, config, generation = initial_state(), start, 1
        first: Observation | None = None
        settled_ms, settled_config = float("inf"), start
        decisions, answers = [], []
        time.sleep(WARMUP_S)
        started = time.monotonic()
        time.sleep(SLO.window_s + 2)  # one full window of warmed-up traffic at B = 1024
        while time.monotonic() - started < BUDGET_S:
            observation = source.observe(RECMODEL, None, SLO, time.time())
            decision, state = decide_next_config(
                observation, config, state, BOUNDS, SLO, SETTINGS, "auto", time.time()
            )
            logger.info("decision %s: %s", decision.action, decision.reason)
            decisions.append(decision)
            if first is None and observation.error is None and observation.p95_ms is not None:
                first = observation
            # The settled p95: the incumbent's reference, averaged over at least two of its
            # windows (one lucky window must not make the figure).
            if (
                state.incumbent is not None
                and state.reference_ms is not None
                and state.reference_count >= 2
            ):
                settled_ms, settled_config = state.reference_ms, state.incumbent
            if settled_config != start:
                break
            if decision.changed:
                generation += 1
                answers.append(push_config(url, decision.config, generation))
                config = decision.config
            time.sleep(STEP_S)
        admin = urllib.request.Request(
            f"{url}/admin/config", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(admin, timeout=5) as reply:
            served = json.load(reply)
    reasons = [d.reason for d in decisions]
    assert first is not None and first.p95_ms is not None, reasons
    assert generation >= 2, reasons  # the config left its start (B = 1024) at least once
    assert [answer["applied"] for answer in answers] == [True] * (generation - 1), answers
    assert served["generation"] == generation and served["batchSize"] == config.batch_size
    logged = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert len(logged) == len(decisions) >= 2
    for decision, message in zip(decisions, logged, strict=True):
        assert decision.reason and decision.reason in message
    settled = settled_config != start
    record_figures(
        "tuner_real_loop",
        {
            "first_p95_ms": first.p95_ms,
            "settled_p95_ms": settled_ms if settled else None,
            "settled_batch_items": settled_config.batch_size if settled else None,
            "gain_pct": 100 * (1 - settled_ms / first.p95_ms) if settled else None,
            "floor_met": settled and floor_met(first.p95_ms, settled_ms),
            "decisions": len(decisions),
            "pushes": generation - 1,
            "target_ms": SLO.target_ms,
        },
    )
