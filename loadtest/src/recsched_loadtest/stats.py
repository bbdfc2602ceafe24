"""Per-query records of a run and the summary computed from them (pure).

Every scheduled query ends in exactly one bucket: ok, or one error kind (`http_<status>`,
`timeout`, `connection`, `bad_response`, `client_saturated`, `deadline`, `exception_<Type>`), so
nothing is dropped: `ok + sum(errors) == queries` is an invariant the tests check. Queries never
sent because a capacity trial was stopped early are outside the window, not errors.

Latency is completion time minus *scheduled* send time (not actual send time), so a client or
server stall shows up as queueing instead of hiding it (coordinated omission). Percentiles are
over successful queries of the measurement window (scheduled at or after `warmup_s`); the SLO
verdict also requires the error ratio to stay below a bound, so failures cannot flatter the p95.
Achieved QPS counts successful completions that land inside the window, divided by its length.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt

OK = ""
NOT_SENT = "not_sent"  # planned but not sent because the run was stopped early
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)

FloatArray = npt.NDArray[np.float64]


@dataclass
class RunRecords:
    """Mutable per-query arrays filled by the driver; times in seconds from the run's start."""

    scheduled_s: FloatArray
    sizes_items: npt.NDArray[np.int64]
    sent_s: FloatArray = field(init=False)
    done_s: FloatArray = field(init=False)
    kinds: list[str] = field(init=False)
    offered_qps: float = 0.0
    duration_s: float = 0.0
    warmup_s: float = 0.0
    stopped_at_s: float | None = None  # set when a run stops early (a capacity trial's verdict)

    def __post_init__(self) -> None:
        count = len(self.scheduled_s)
        self.sent_s = np.full(count, np.nan)
        self.done_s = np.full(count, np.nan)
        self.kinds = [NOT_SENT] * count

    @property
    def window_end_s(self) -> float:
        return (
            self.duration_s
            if self.stopped_at_s is None
            else min(self.duration_s, self.stopped_at_s)
        )


@dataclass(frozen=True)
class LatencySummary:
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


@dataclass(frozen=True)
class RunSummary:
    offered_qps: float  # the profile's nominal mean rate
    scheduled_qps: float  # queries actually scheduled in the window / window
    achieved_qps: float  # successful completions inside the window / window
    window_s: float
    queries: int  # scheduled in the window: ok + all errors
    ok: int
    errors: dict[str, int]
    warmup_errors: dict[str, int]
    error_ratio: float
    latency: LatencySummary | None
    send_lag_p99_ms: float  # how late the client itself sent (client health)
    mean_items: float
    stopped_early: bool

    @property
    def p95_ms(self) -> float:
        return self.latency.p95_ms if self.latency is not None else math.inf

    def meets_slo(self, target_ms: float, max_error_ratio: float = 0.01) -> bool:
        return self.ok > 0 and self.p95_ms <= target_ms and self.error_ratio < max_error_ratio

    def to_json_dict(self) -> dict[str, object]:
        document = asdict(self)
        document["p95_ms"] = self.p95_ms if self.latency is not None else None
        return document


def summarize_latency(latency_ms: FloatArray) -> LatencySummary | None:
    if latency_ms.size == 0:
        return None
    p50, p90, p95, p99, p999 = (float(v) for v in np.percentile(latency_ms, PERCENTILES))
    return LatencySummary(
        count=int(latency_ms.size),
        mean_ms=float(latency_ms.mean()),
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        p999_ms=p999,
        max_ms=float(latency_ms.max()),
    )


def summarize_run(records: RunRecords) -> RunSummary:
    end_s = records.window_end_s
    window_s = max(end_s - records.warmup_s, 1e-9)
    kinds = np.array(records.kinds, dtype=object)
    in_window = (records.scheduled_s >= records.warmup_s) & (records.scheduled_s < end_s)
    in_warmup = records.scheduled_s < records.warmup_s
    ok = kinds == OK
    counted = kinds != NOT_SENT
    measured_ok = in_window & ok
    latency_ms = (records.done_s[measured_ok] - records.scheduled_s[measured_ok]) * 1e3
    errors = Counter(str(kind) for kind in kinds[in_window & ~ok & counted])
    warmup_errors = Counter(str(kind) for kind in kinds[in_warmup & ~ok & counted])
    queries = int(np.count_nonzero(in_window & counted))
    completed_in_window = ok & (records.done_s >= records.warmup_s) & (records.done_s < end_s)
    sent = in_window & ~np.isnan(records.sent_s)
    send_lag_ms = (records.sent_s[sent] - records.scheduled_s[sent]) * 1e3
    return RunSummary(
        offered_qps=records.offered_qps,
        scheduled_qps=queries / window_s,
        achieved_qps=int(np.count_nonzero(completed_in_window)) / window_s,
        window_s=window_s,
        queries=queries,
        ok=int(np.count_nonzero(measured_ok)),
        errors=dict(sorted(errors.items())),
        warmup_errors=dict(sorted(warmup_errors.items())),
        error_ratio=sum(errors.values()) / queries if queries else 0.0,
        latency=summarize_latency(latency_ms),
        send_lag_p99_ms=float(np.percentile(send_lag_ms, 99)) if send_lag_ms.size else 0.0,
        mean_items=float(records.sizes_items[in_window].mean()) if queries else 0.0,
        stopped_early=records.stopped_at_s is not None,
    )
