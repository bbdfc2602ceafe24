"""Runs trials for the capacity search and single fixed-workload runs (I/O).

The search logic is `capacity_search.CapacitySearch`; this module only builds each trial's workload
(a constant offered rate with Poisson arrivals; by default the same query sequence in every
trial, see `capacity_search.trial_seed`), drives it, turns the summary into a `TrialPoint` and
feeds it back. A trial stops early as soon as it can no longer
pass, which keeps overload probes short and the server's backlog small. A trial's measured window
lasts `trial_s` or long enough for `min_trial_queries` at its rate, whichever is longer; and
`measure_capacity_repeated` runs whole searches K times (the same seed, or seed, seed + 1, ...)
for their spread.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from recsched_loadtest.capacity_search import (
    CapacityPolicy,
    CapacityResult,
    CapacitySearch,
    TrialPoint,
    repeat_seed,
    trial_certainly_fails,
    trial_passes,
    trial_seed,
    trial_window_s,
)
from recsched_loadtest.driver import DriveOptions, LiveCounts, Monitor, drive_open_loop
from recsched_loadtest.errors import SpecError
from recsched_loadtest.signature import ModelSignature
from recsched_loadtest.stats import RunSummary, summarize_run
from recsched_loadtest.transports import InferTransport
from recsched_loadtest.workload import WorkloadSpec, build_workload


@dataclass(frozen=True)
class TrialSettings:
    trial_s: float = 10.0  # measured window of one trial, at least
    min_trial_queries: int = 100  # expected queries in the window, at least (low rates last longer)
    warmup_s: float = 2.0
    cooldown_s: float = 0.5  # pause between trials so the endpoint drains
    max_search_s: float = 1800.0
    common_workload: bool = True  # every trial replays one query sequence (common random numbers)
    drive: DriveOptions = field(default_factory=DriveOptions)


class TrialReporter(Protocol):
    def trial_started(self, number: int, rate_qps: float, queries: int) -> None: ...

    def live(self, counts: LiveCounts) -> None: ...

    def trial_finished(self, point: TrialPoint) -> None: ...


class TrialStartHook(Protocol):
    def __call__(self, queries: int) -> None: ...


async def run_workload(
    transport: InferTransport,
    signature: ModelSignature,
    spec: WorkloadSpec,
    options: DriveOptions,
    monitor: Monitor | None = None,
    on_built: TrialStartHook | None = None,
) -> RunSummary:
    """Build, drive and summarise one open-loop run."""
    workload = build_workload(spec, signature)
    if on_built is not None:
        on_built(len(workload.scheduled_s))
    records = await drive_open_loop(
        transport,
        workload.queries,
        workload.scheduled_s,
        offered_qps=workload.offered_qps,
        duration_s=workload.duration_s,
        options=options,
        monitor=monitor,
    )
    return summarize_run(records)


def trial_point(summary: RunSummary, policy: CapacityPolicy) -> TrialPoint:
    latency = summary.latency
    return TrialPoint(
        offered_qps=summary.offered_qps,
        achieved_qps=summary.achieved_qps,
        p50_ms=latency.p50_ms if latency else math.inf,
        p95_ms=summary.p95_ms,
        p99_ms=latency.p99_ms if latency else math.inf,
        error_ratio=summary.error_ratio,
        queries=summary.queries,
        passed=trial_passes(summary.p95_ms, summary.error_ratio, summary.ok, policy)
        and not summary.stopped_early,
        stopped_early=summary.stopped_early,
    )


async def measure_capacity(
    transport: InferTransport,
    signature: ModelSignature,
    spec: WorkloadSpec,
    policy: CapacityPolicy,
    settings: TrialSettings,
    reporter: TrialReporter | None = None,
) -> CapacityResult:
    search = CapacitySearch(policy)
    options = replace(
        settings.drive, warmup_s=settings.warmup_s, slow_threshold_ms=policy.target_ms
    )
    started = time.monotonic()
    number = 0

    def monitor(counts: LiveCounts) -> bool:
        if reporter is not None:
            reporter.live(counts)
        return trial_certainly_fails(
            counts.planned_window,
            counts.errors_window,
            counts.slow_done_window,
            counts.slow_in_flight_window,
            policy,
        )

    while (rate_qps := search.next_rate_qps()) is not None:
        if time.monotonic() - started > settings.max_search_s:
            search.stop(f"stopped at the time bound of {settings.max_search_s:g} s")
            break
        number += 1
        window_s = trial_window_s(rate_qps, settings.trial_s, settings.min_trial_queries)
        trial_spec = spec.at_constant_rate(
            rate_qps,
            settings.warmup_s + window_s,
            seed=trial_seed(spec.seed, number, settings.common_workload),
        )

        def started_hook(queries: int, number: int = number, rate_qps: float = rate_qps) -> None:
            if reporter is not None:
                reporter.trial_started(number, rate_qps, queries)

        summary = await run_workload(
            transport, signature, trial_spec, options, monitor, on_built=started_hook
        )
        point = trial_point(summary, policy)
        search.record(point)
        if reporter is not None:
            reporter.trial_finished(point)
        await asyncio.sleep(settings.cooldown_s)
    return search.result()


async def measure_capacity_repeated(
    transport: InferTransport,
    signature: ModelSignature,
    spec: WorkloadSpec,
    policy: CapacityPolicy,
    settings: TrialSettings,
    repeats: int,
    reporter_for: Callable[[int], TrialReporter | None] = lambda _repeat: None,
    vary_seed: bool = False,
) -> list[CapacityResult]:
    """`repeats` searches, one after another: all on `spec.seed` (the instrument's own
    repeatability), or with `vary_seed` repeat r on seed `spec.seed + r` (workload sampling too)."""
    if repeats < 1:
        raise SpecError("--repeat must be >= 1")
    results = []
    for repeat in range(repeats):
        repeat_spec = replace(spec, seed=repeat_seed(spec.seed, repeat, vary_seed))
        results.append(
            await measure_capacity(
                transport, signature, repeat_spec, policy, settings, reporter_for(repeat)
            )
        )
        if repeat + 1 < repeats:
            await asyncio.sleep(settings.cooldown_s)
    return results
