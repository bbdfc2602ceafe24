"""Proof the instrument measures right: M/D/1 p95 and capacity against queueing theory.

Two separate questions, so that neither check depends on how busy the machine is:

* Does the instrument's logic (open-loop schedule, warm-up window, statistics, capacity search)
  report what the queue did? Checked on a virtual clock (`support.virtual_clock`) against the
  test server's queue run in-process (`loadtest_virtual_queue.QueueTransport`): every timestamp
  is exact, so the p95 equals the exact replay of the same arrivals, and seed 1's 40 s arrival
  path gives theory's p95 (its replay is within 0.2% of it; across seeds 1-5 the 40 s path's p95
  spreads -15%..+6% around theory, which is why the seed is fixed).
* Over real HTTP, against the queue in its own process (`loadtest_oip_server.py`, exact in wall
  time), the instrument can only add time, never remove it: that is asserted. How much it adds
  (HTTP on loopback plus CPU contention) is a figure, written with RECSCHED_TEST_FIGURES_DIR set.
"""

from __future__ import annotations

import numpy as np
import pytest
from loadtest_queueing_theory import capacity_qps, md1_sojourn_quantile_s
from loadtest_server_process import TestServer
from loadtest_virtual_queue import QueueTransport, use_loop_clock

from recsched_loadtest.arrivals import constant_rate
from recsched_loadtest.capacity import TrialSettings, measure_capacity
from recsched_loadtest.capacity_search import CapacityPolicy, CapacityResult
from recsched_loadtest.driver import DriveOptions, drive_open_loop
from recsched_loadtest.oip_client import fetch_signature
from recsched_loadtest.signature import ModelSignature
from recsched_loadtest.sizes import FixedSizes
from recsched_loadtest.stats import OK, RunRecords, summarize_run
from recsched_loadtest.transports import InferTransport, make_transport
from recsched_loadtest.workload import Workload, WorkloadSpec, build_workload
from support.figures import record_figures
from support.virtual_clock import run_on_virtual_clock

SIGNATURE = ModelSignature("toy", 4, (100, 50, 10), 2, 1, 1024)
SERVICE_S, RATE_QPS, WARMUP_S = 0.020, 25.0, 2.0  # rho = 0.5
THEORY_P95_MS = md1_sojourn_quantile_s(RATE_QPS, SERVICE_S, 0.95) * 1e3  # 61.0 ms


def _replay_md1(arrivals_s: np.ndarray, service_s: float) -> np.ndarray:
    departures = np.empty(len(arrivals_s))
    free_at = 0.0
    for index, arrival in enumerate(arrivals_s):
        free_at = max(arrival, free_at) + service_s
        departures[index] = free_at
    return departures - arrivals_s


def _md1_workload(signature: ModelSignature, measured_s: float) -> Workload:
    spec = WorkloadSpec(
        profile=constant_rate(RATE_QPS, WARMUP_S + measured_s), sizes=FixedSizes(1), seed=1
    )
    return build_workload(spec, signature)


async def _drive(transport: InferTransport, workload: Workload) -> RunRecords:
    return await drive_open_loop(
        transport,
        workload.queries,
        workload.scheduled_s,
        offered_qps=RATE_QPS,
        duration_s=workload.duration_s,
        options=DriveOptions(warmup_s=WARMUP_S),
    )


@pytest.mark.timeout(60)
def test_md1_p95_is_the_exact_replay_and_theory_within_1_percent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_loop_clock(monkeypatch)
    workload = _md1_workload(SIGNATURE, measured_s=40.0)
    records = run_on_virtual_clock(_drive(QueueTransport(SERVICE_S), workload))
    summary = summarize_run(records)
    measured = workload.scheduled_s >= WARMUP_S
    replay_ms = _replay_md1(workload.scheduled_s, SERVICE_S)[measured] * 1e3
    assert records.kinds == [OK] * len(workload.scheduled_s)
    assert summary.errors == {} and summary.queries == np.count_nonzero(measured)
    assert summary.p95_ms == pytest.approx(np.percentile(replay_ms, 95), abs=1e-6)
    assert summary.p95_ms == pytest.approx(THEORY_P95_MS, rel=0.01)
    assert summary.latency is not None and summary.latency.p50_ms < 0.5 * THEORY_P95_MS


@pytest.mark.timeout(60)
def test_capacity_search_finds_md1_latency_bounded_capacity_within_10_percent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service_s, target_ms = 0.010, 80.0
    theory_qps = capacity_qps(
        lambda rate: md1_sojourn_quantile_s(rate, service_s, 0.95), target_ms / 1e3, 1 / service_s
    )  # 81.0 QPS (rho = 0.81)
    use_loop_clock(monkeypatch)
    result: CapacityResult = run_on_virtual_clock(
        measure_capacity(
            QueueTransport(service_s),
            SIGNATURE,
            WorkloadSpec(sizes=FixedSizes(1), seed=1),
            CapacityPolicy(target_ms=target_ms, start_qps=40.0),
            TrialSettings(trial_s=6.0, warmup_s=1.0, cooldown_s=0.3, max_search_s=150.0),
        )
    )
    assert result.converged, result.reason
    assert result.capacity_qps == pytest.approx(theory_qps, rel=0.10)
    assert result.hi_qps is not None and result.hi_qps / result.capacity_qps <= 1.05 + 1e-9
    passed = [point.offered_qps for point in result.curve if point.passed]
    assert max(passed) == result.capacity_qps


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_over_http_no_query_is_reported_sooner_than_the_queue_releases_it(
    fresh_server: TestServer,
) -> None:
    fresh_server.set_behaviour(service="det", service_s=SERVICE_S, servers=1)
    workload = _md1_workload(await fetch_signature(fresh_server.url, "toy"), measured_s=12.0)
    transport = make_transport("aiohttp", fresh_server.url, "toy", 256)
    try:
        records = await _drive(transport, workload)
    finally:
        await transport.aclose()
    summary = summarize_run(records)
    assert records.kinds == [OK] * len(workload.scheduled_s)
    # The k-th query to finish finishes no sooner than the k-th departure of the exact queue fed
    # at the scheduled times (the server sees each query at or after its scheduled time, and a
    # single deterministic server's departures only move later with later arrivals). Compared in
    # order of completion, not per query: two queries sent on different connections can reach
    # the server in swapped order, and then the later-scheduled one leaves up to one service
    # time before its replay does. 1 ms of slack for the server's millisecond timers.
    replay_s = _replay_md1(workload.scheduled_s, SERVICE_S)
    early_ms = (np.sort(workload.scheduled_s + replay_s) - np.sort(records.done_s)) * 1e3
    assert np.all(early_ms < 1.0), f"under-reported by {early_ms.max():.1f} ms"
    measured = workload.scheduled_s >= WARMUP_S
    excess_ms = ((records.done_s - records.scheduled_s) - replay_s)[measured] * 1e3
    record_figures(
        "loadtest_md1_p95",
        {
            "measured_s": workload.duration_s - WARMUP_S,
            "measured_p95_ms": summary.p95_ms,
            "replay_p95_ms": float(np.percentile(replay_s[measured], 95) * 1e3),
            "theory_p95_ms": THEORY_P95_MS,
            "overhead_median_ms": float(np.median(excess_ms)),
            "overhead_p95_ms": float(np.percentile(excess_ms, 95)),
        },
    )
