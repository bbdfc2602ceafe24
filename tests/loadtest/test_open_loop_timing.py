"""The driver's clock: sends follow the absolute schedule, and stalls (the client's or the
server's) count as latency from the scheduled time.

These run the driver on a virtual clock (`support.virtual_clock`): the fake transports'
"service" is an asyncio sleep, and a client's per-send overhead or stall blocks the loop for
virtual time, so every timestamp is exact and a busy machine can neither fake a pass nor a
failure. How late a real client sends under real load is a benchmark figure:
`bench/loadtest_generator_limit.py` (send lag p99 per offered rate, docs/benchmarks/loadtest.md
section 2).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from loadtest_virtual_queue import QueueTransport, use_loop_clock

from recsched_loadtest.arrivals import constant_rate, constant_schedule_s
from recsched_loadtest.driver import DriveOptions, drive_open_loop
from recsched_loadtest.encoding import prepare_queries
from recsched_loadtest.indices import IndexDistribution
from recsched_loadtest.signature import ModelSignature
from recsched_loadtest.sizes import FixedSizes
from recsched_loadtest.stats import OK, RunRecords, summarize_run
from recsched_loadtest.transports import InferTransport
from recsched_loadtest.workload import WorkloadSpec, build_workload
from support.virtual_clock import block_for, run_on_virtual_clock

SIGNATURE = ModelSignature("fake", 2, (10,), 1, 1, 1024)


class FakeTransport:
    """Answers after `service_s`; blocks the event loop for `overhead_s` per send and for
    `stall_s` on send number `stall_at` (1-based), like a slow client or a GC pause would."""

    def __init__(
        self, service_s: float, overhead_s: float = 0.0, stall_at: int = 0, stall_s: float = 0.0
    ) -> None:
        self.service_s = service_s
        self.overhead_s = overhead_s
        self.stall_at = stall_at
        self.stall_s = stall_s
        self.calls = 0

    async def infer(
        self, body: bytes, header_length: int | None, content_type: str, expected_items: int
    ) -> str | None:
        self.calls += 1
        if self.calls == self.stall_at:
            block_for(self.stall_s)  # the point: a frozen event loop
        if self.overhead_s:
            block_for(self.overhead_s)  # blocking per-send work
        await asyncio.sleep(self.service_s)  # the subject: service time, on the virtual clock
        return None

    async def aclose(self) -> None:
        return None


def _drive(
    transport: InferTransport, rate_qps: float, duration_s: float, monkeypatch: pytest.MonkeyPatch
) -> RunRecords:
    """Drive `transport` at a constant rate on a virtual clock the driver's timestamps read."""
    use_loop_clock(monkeypatch)
    return run_on_virtual_clock(_drive_async(transport, rate_qps, duration_s))


async def _drive_async(transport: InferTransport, rate_qps: float, duration_s: float) -> RunRecords:
    profile = constant_rate(rate_qps, duration_s)
    schedule = constant_schedule_s(profile)
    sizes = np.full(len(schedule), 4, dtype=np.int64)
    queries = prepare_queries(np.random.default_rng(1), SIGNATURE, sizes, IndexDistribution())
    return await drive_open_loop(
        transport,
        queries,
        schedule,
        offered_qps=rate_qps,
        duration_s=duration_s,
        options=DriveOptions(request_timeout_s=5.0, drain_timeout_s=5.0),
    )


@pytest.mark.timeout(30)
def test_send_overhead_does_not_make_the_schedule_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0.5 ms of blocking work per send at 200 QPS: a sleep-after-send generator would end
    # 400 x 0.5 ms = 200 ms late; on the absolute clock no send is later than one overhead.
    records = _drive(FakeTransport(service_s=0.002, overhead_s=0.0005), 200.0, 2.0, monkeypatch)
    lag_ms = (records.sent_s - records.scheduled_s) * 1e3
    assert records.kinds == [OK] * 400
    assert np.all(lag_ms > -1e-9)  # never early
    assert lag_ms.max() <= 0.5 + 1e-6
    achieved_span_s = records.sent_s[-1] - records.sent_s[0]
    assert achieved_span_s == pytest.approx(399 / 200.0, abs=1e-3)


@pytest.mark.timeout(30)
def test_a_client_stall_shows_up_as_latency_from_the_scheduled_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The loop freezes for 300 ms at send 50 (t = 0.49 s): the ~30 queries due meanwhile go out
    # late, and their latency counts from when they were due, not from when they were sent.
    stalled = FakeTransport(service_s=0.001, stall_at=50, stall_s=0.3)
    records = _drive(stalled, 100.0, 2.0, monkeypatch)
    latency_ms = (records.done_s - records.scheduled_s) * 1e3
    stall_start_s = records.scheduled_s[49]
    delayed = (records.scheduled_s > stall_start_s) & (records.scheduled_s < stall_start_s + 0.3)
    owed_ms = (stall_start_s + 0.3 - records.scheduled_s[delayed]) * 1e3
    assert delayed.sum() == 29
    assert np.all(latency_ms[delayed] >= owed_ms - 2.0)
    assert np.count_nonzero(latency_ms > 100.0) >= 19
    summary = summarize_run(records)
    assert summary.latency is not None and summary.latency.max_ms >= 280.0
    assert summary.send_lag_p99_ms >= 200.0  # the client's own lag is reported too


@pytest.mark.timeout(30)
def test_a_stalled_server_shows_its_queue_in_measured_latency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No service from 1.0 to 1.5 s after the first arrival, at 100 QPS and 2 ms of service: the
    # 50 queries due then queue up and each one's latency counts from when it was due. A
    # closed-loop client would wait out the stall on one query and report a single slow sample.
    stalled = QueueTransport(service_s=0.002, stall_at_s=1.0, stall_s=0.5)
    records = _drive(stalled, 100.0, 3.0, monkeypatch)
    latency_ms = (records.done_s - records.scheduled_s) * 1e3
    first_s = records.scheduled_s[0]
    during = (records.scheduled_s >= first_s + 1.0) & (records.scheduled_s < first_s + 1.5)
    owed_ms = (first_s + 1.5 - records.scheduled_s[during]) * 1e3
    assert records.kinds == [OK] * 300
    assert during.sum() == 50
    assert np.all(latency_ms[during] >= owed_ms + 2.0 - 1e-6)  # the stall, then its service
    # ... and the first query after it waits behind their 100 ms of queued service
    assert np.count_nonzero(latency_ms > 100.0) == 51
    summary = summarize_run(records)
    assert summary.latency is not None
    assert summary.latency.max_ms == pytest.approx(502.0, abs=1e-6)
    assert summary.latency.p99_ms > 300.0 and summary.latency.p50_ms == pytest.approx(2.0)


@pytest.mark.timeout(30)
def test_poisson_load_achieves_its_offered_rate_on_a_fast_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_loop_clock(monkeypatch)
    spec = WorkloadSpec(
        profile=constant_rate(200.0, 3.0), arrivals="poisson", sizes=FixedSizes(8), seed=1
    )
    workload = build_workload(spec, SIGNATURE)
    records = run_on_virtual_clock(
        drive_open_loop(
            QueueTransport(service_s=0.001, servers=4),
            workload.queries,
            workload.scheduled_s,
            offered_qps=workload.offered_qps,
            duration_s=workload.duration_s,
            options=DriveOptions(warmup_s=0.5),
        )
    )
    summary = summarize_run(records)
    assert summary.errors == {}
    assert summary.achieved_qps == pytest.approx(summary.scheduled_qps, rel=0.05)
    assert summary.scheduled_qps == pytest.approx(200.0, rel=0.1)
