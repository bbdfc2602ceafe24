"""The driver's clock: sends follow the absolute schedule, and client stalls count as latency.

These run the driver on a virtual clock (`support.virtual_clock`): the fake transport's "service"
is an asyncio sleep, and its per-send overhead or stall blocks the loop for virtual time, so
every timestamp is exact and a busy machine can neither fake a pass nor a failure. How late a
real client sends under real load is a benchmark figure: `bench/loadtest_generator_limit.py`
(send lag p99 per offered rate, docs/benchmarks/loadtest.md section 2).
"""

from __future__ import annotations

import asyncio
import types

import numpy as np
import pytest

from recsched_loadtest import driver
from recsched_loadtest.arrivals import constant_rate, constant_schedule_s
from recsched_loadtest.driver import DriveOptions, drive_open_loop
from recsched_loadtest.encoding import prepare_queries
from recsched_loadtest.indices import IndexDistribution
from recsched_loadtest.signature import ModelSignature
from recsched_loadtest.stats import OK, RunRecords, summarize_run
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
        await asyncio.sleep(self.service_s)
        return None

    async def aclose(self) -> None:
        return None


def _drive(
    transport: FakeTransport, rate_qps: float, duration_s: float, monkeypatch: pytest.MonkeyPatch
) -> RunRecords:
    """Drive the fake transport on a virtual clock; the driver's timestamps read that clock."""
    loop_clock = types.SimpleNamespace(perf_counter=lambda: asyncio.get_running_loop().time())
    monkeypatch.setattr(driver, "time", loop_clock)
    return run_on_virtual_clock(_drive_async(transport, rate_qps, duration_s))


async def _drive_async(transport: FakeTransport, rate_qps: float, duration_s: float) -> RunRecords:
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
