"""The open-loop driver: sends pre-encoded queries at their scheduled times and records them (I/O).

Query i is due at `start + scheduled_s[i]`. The sender sleeps until the next due time and never
waits for responses, so a slow server cannot slow the offered load (open loop). If the loop falls
behind, due queries go out back to back until it has caught up (no drift), and their latency still
counts from the scheduled time. Wake-ups have the event loop's 1 ms timer granularity, which the
recorded send lag makes visible.

Timestamps come from `time.perf_counter()`, not `loop.time()`: under uvloop that is libuv's cached
millisecond clock, which would round every latency to whole milliseconds and date a send to the
start of its loop iteration.

Bounds: at most `max_in_flight` outstanding queries (more are recorded as `client_saturated`),
a per-query deadline (`timeout`), and a drain deadline after the last send (`deadline`), so a run
lasts at most duration + drain_timeout_s. A `monitor` callback sees live counts every
`check_interval_s` and may stop the run early (a capacity trial that can no longer pass).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recsched_loadtest.encoding import PreparedQueries
from recsched_loadtest.stats import OK, RunRecords
from recsched_loadtest.transports import InferTransport

_YIELD_EVERY_SENDS = 32
_START_DELAY_S = 0.05


@dataclass(frozen=True)
class DriveOptions:
    warmup_s: float = 0.0
    max_in_flight: int = 1024
    request_timeout_s: float = 10.0
    drain_timeout_s: float = 10.0
    check_interval_s: float = 0.25
    slow_threshold_ms: float | None = None  # completions above it are counted as slow, live


@dataclass(frozen=True)
class LiveCounts:
    """What the monitor sees; `window` counts only queries scheduled after the warm-up."""

    elapsed_s: float
    sent: int
    completed: int
    in_flight: int
    errors: int
    planned_window: int
    errors_window: int
    slow_done_window: int
    slow_in_flight_window: int
    recent_p95_ms: float  # over the last 2048 successful completions; nan before any


Monitor = Callable[[LiveCounts], bool]


class _OpenLoopRun:
    def __init__(
        self,
        transport: InferTransport,
        queries: PreparedQueries,
        records: RunRecords,
        options: DriveOptions,
        monitor: Monitor | None,
    ) -> None:
        self.transport = transport
        self.queries = queries
        self.records = records
        self.options = options
        self.monitor = monitor
        self.loop = asyncio.get_running_loop()
        self.start = time.perf_counter() + _START_DELAY_S
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.task_queries: dict[asyncio.Task[None], int] = {}
        self.next_index = 0
        self.sent = self.completed = self.errors = 0
        self.errors_window = self.slow_done_window = 0
        self.recent_latency_ms: collections.deque[float] = collections.deque(maxlen=2048)
        scheduled = records.scheduled_s
        self.planned_window = int(
            np.count_nonzero((scheduled >= records.warmup_s) & (scheduled < records.duration_s))
        )
        self.slow_threshold_s = (
            options.slow_threshold_ms / 1e3 if options.slow_threshold_ms is not None else None
        )

    def _now_s(self) -> float:
        return time.perf_counter() - self.start

    def _finish(self, query: int, kind: str) -> None:
        records = self.records
        records.kinds[query] = kind
        in_window = records.scheduled_s[query] >= records.warmup_s
        if kind != OK:
            self.errors += 1
            self.errors_window += int(in_window)
            return
        latency_s = records.done_s[query] - records.scheduled_s[query]
        self.recent_latency_ms.append(latency_s * 1e3)
        if in_window and self.slow_threshold_s is not None and latency_s > self.slow_threshold_s:
            self.slow_done_window += 1

    async def _send_one(self, query: int) -> None:
        body = self.queries.body(query)
        header_length = (
            self.queries.header_lengths[query] if self.queries.protocol == "binary" else None
        )
        self.records.sent_s[query] = self._now_s()
        try:
            async with asyncio.timeout(self.options.request_timeout_s):
                kind = await self.transport.infer(
                    body,
                    header_length,
                    self.queries.content_type,
                    int(self.queries.sizes_items[query]),
                )
        except TimeoutError:
            kind = "timeout"
        except asyncio.CancelledError:
            self.records.kinds[query] = "deadline"
            self.errors += 1
            raise
        except Exception as exc:  # any client bug still lands in the accounting
            kind = f"exception_{type(exc).__name__}"
        self.completed += 1
        self.records.done_s[query] = self._now_s()
        self._finish(query, kind or OK)

    def _forget(self, task: asyncio.Task[None]) -> None:
        query = self.task_queries.pop(task, None)
        if query is not None:
            self.in_flight.pop(query, None)

    async def _send_all(self) -> None:
        scheduled = self.records.scheduled_s
        since_yield = 0
        for query in range(len(scheduled)):
            self.next_index = query
            delay_s = scheduled[query] - self._now_s()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
                since_yield = 0
            elif since_yield >= _YIELD_EVERY_SENDS:
                await asyncio.sleep(0)  # catching up: let responses be read meanwhile
                since_yield = 0
            since_yield += 1
            if len(self.in_flight) >= self.options.max_in_flight:
                self.records.sent_s[query] = self._now_s()
                self._finish(query, "client_saturated")
                continue
            self.sent += 1
            task = self.loop.create_task(self._send_one(query))
            self.in_flight[query] = task
            self.task_queries[task] = query
            task.add_done_callback(self._forget)
        self.next_index = len(scheduled)

    def live_counts(self) -> LiveCounts:
        records = self.records
        now_s = self._now_s()
        slow_in_flight = 0
        if self.slow_threshold_s is not None:
            oldest_ok_s = now_s - self.slow_threshold_s
            for query in list(self.in_flight):
                scheduled_s = records.scheduled_s[query]
                slow_in_flight += int(records.warmup_s <= scheduled_s < oldest_ok_s)
        recent = np.fromiter(self.recent_latency_ms, dtype=np.float64)
        return LiveCounts(
            elapsed_s=now_s,
            sent=self.sent,
            completed=self.completed,
            in_flight=len(self.in_flight),
            errors=self.errors,
            planned_window=self.planned_window,
            errors_window=self.errors_window,
            slow_done_window=self.slow_done_window,
            slow_in_flight_window=slow_in_flight,
            recent_p95_ms=float(np.percentile(recent, 95)) if recent.size else float("nan"),
        )

    async def _watch(self, sender: asyncio.Task[None]) -> None:
        assert self.monitor is not None
        while True:
            await asyncio.sleep(self.options.check_interval_s)
            if self.monitor(self.live_counts()) and not sender.done():
                scheduled = self.records.scheduled_s
                pending_s = scheduled[self.next_index] if self.next_index < len(scheduled) else 0.0
                self.records.stopped_at_s = min(self._now_s(), float(pending_s))
                sender.cancel()

    async def run(self) -> RunRecords:
        sender = self.loop.create_task(self._send_all())
        watcher = self.loop.create_task(self._watch(sender)) if self.monitor else None
        try:
            try:
                await sender
            except asyncio.CancelledError:
                if self.records.stopped_at_s is None:
                    raise  # cancelled from outside, not stopped by the monitor
            pending = set(self.in_flight.values())
            if pending:
                _, still_running = await asyncio.wait(pending, timeout=self.options.drain_timeout_s)
                for task in still_running:
                    task.cancel()
                await asyncio.gather(*still_running, return_exceptions=True)
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
        if self.monitor is not None:
            self.monitor(self.live_counts())  # a last refresh for progress displays
        return self.records


async def drive_open_loop(
    transport: InferTransport,
    queries: PreparedQueries,
    scheduled_s: np.ndarray,
    *,
    offered_qps: float,
    duration_s: float,
    options: DriveOptions,
    monitor: Monitor | None = None,
) -> RunRecords:
    """Send every query at its scheduled offset; return the filled per-query records."""
    if len(scheduled_s) != len(queries):
        raise ValueError("one scheduled time per prepared query is needed")
    records = RunRecords(
        scheduled_s=np.asarray(scheduled_s, dtype=np.float64),
        sizes_items=queries.sizes_items,
        offered_qps=offered_qps,
        duration_s=duration_s,
        warmup_s=options.warmup_s,
    )
    return await _OpenLoopRun(transport, queries, records, options, monitor).run()
