"""The test server's queue as an in-process transport, for driving the load test on a virtual
clock (test helper).

`QueueTransport` is the FIFO queue of `loadtest_oip_server.py` (c identical servers, fixed
service time, an optional stall window, departures by the Lindley recursion) answering in the
driver's own event loop, with no HTTP. Run on `support.virtual_clock`, with the load test's
clocks pointed at the loop's (`use_loop_clock`), every arrival is exactly on schedule and every
departure exactly where the queue puts it, so what the instrument reports can be compared with
theory and with an exact replay with no allowance for a busy machine. What HTTP adds on top is
measured against the real server process (`test_queueing_theory_match.py`, as a figure).
"""

from __future__ import annotations

import asyncio
import heapq
import types

import pytest

from recsched_loadtest import capacity, driver


def use_loop_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the driver's timestamps and the capacity search's time bound read the running
    event loop's clock (the virtual one, under `run_on_virtual_clock`)."""

    def loop_time_s() -> float:
        return asyncio.get_running_loop().time()

    monkeypatch.setattr(driver, "time", types.SimpleNamespace(perf_counter=loop_time_s))
    monkeypatch.setattr(capacity, "time", types.SimpleNamespace(monotonic=loop_time_s))


class QueueTransport:
    """Answers each query when a FIFO queue with `servers` servers of fixed `service_s` would
    release it. No service starts during [`stall_at_s`, `stall_at_s + stall_s`) after the first
    arrival (a frozen server). `arrivals_s` keeps every arrival on the loop's clock."""

    def __init__(
        self,
        service_s: float,
        servers: int = 1,
        stall_at_s: float | None = None,
        stall_s: float = 0.0,
    ) -> None:
        self.service_s = service_s
        self.servers = servers
        self.stall_at_s = stall_at_s
        self.stall_s = stall_s
        self.free_at_s: list[float] = []
        self.epoch_s: float | None = None
        self.arrivals_s: list[float] = []

    def departure_s(self, arrival_s: float) -> float:
        if self.epoch_s is None:
            self.epoch_s = arrival_s
            self.free_at_s = [arrival_s] * self.servers
        start_s = max(arrival_s, heapq.heappop(self.free_at_s))
        if self.stall_at_s is not None:
            stall_start_s = self.epoch_s + self.stall_at_s
            if stall_start_s <= start_s < stall_start_s + self.stall_s:
                start_s = stall_start_s + self.stall_s
        heapq.heappush(self.free_at_s, start_s + self.service_s)
        return start_s + self.service_s

    async def infer(
        self, body: bytes, header_length: int | None, content_type: str, expected_items: int
    ) -> str | None:
        loop = asyncio.get_running_loop()
        arrival_s = loop.time()
        self.arrivals_s.append(arrival_s)
        await asyncio.sleep(self.departure_s(arrival_s) - arrival_s)  # the subject: the queue
        return None

    async def aclose(self) -> None:
        return None
