"""What the tuner sees of one measurement window, independent of where it came from.

`prometheus_source.PrometheusSource` fills it from histograms; the simulator fills it from simulated
queries. Anything that makes the numbers untrustworthy (Prometheus unreachable, stale series, NaN)
is carried in `error` instead of raised, so the tuner can hold with that reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Observation:
    """End-to-end latency and load over the window ending at `at_s`.

    Latencies in ms; `samples` is the number of queries completed in the window; per-pool
    percentiles are None when that pool served nothing; `batch_size_items` and
    `offload_threshold_items` are the values the pods and router report serving (None if unknown
    or if they disagree, e.g. mid-rollout). `rejected_fraction` is refused / (refused + served)
    queries; `*_utilization` is the work offered to a pool per worker-second: its compute seconds
    per second per worker, scaled up by the share of its queries it refused (1.0 = saturated; above
    1.0 the pool sheds or queues more than it serves).
    """

    at_s: float
    qps: float | None
    p95_ms: float | None
    p99_ms: float | None
    samples: float
    cpu_p95_ms: float | None = None
    gpu_p95_ms: float | None = None
    offloaded_fraction: float | None = None
    mean_query_items: float | None = None
    p95_query_items: float | None = None
    rejected_fraction: float | None = None
    cpu_utilization: float | None = None
    gpu_utilization: float | None = None
    batch_size_items: int | None = None
    offload_threshold_items: int | None = None
    window_s: float | None = None
    error: str | None = None

    @classmethod
    def failed(cls, at_s: float, error: str) -> Observation:
        """An observation that carries only why there is nothing to see."""
        return cls(at_s=at_s, qps=None, p95_ms=None, p99_ms=None, samples=0.0, error=error)

    def latency_ms(self, percentile: int) -> float | None:
        """The tracked percentile (95 or 99), or None if missing or not finite."""
        value = self.p95_ms if percentile == 95 else self.p99_ms
        if value is None or not math.isfinite(value):
            return None
        return value
