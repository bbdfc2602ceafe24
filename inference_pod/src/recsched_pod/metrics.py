"""Prometheus metrics of a pod or router, on a registry of its own (one per app instance).

Durations are histograms in seconds with log-spaced buckets 2^(1/8) apart (about 9% wide) from
0.5 ms to 8 s, so `histogram_quantile` resolves a p95 between 1 ms and 2 s to within about 5%
and quantiles aggregate across pods (DESIGN.md section 3). Sizes are histograms in items on powers
of two. Every series carries the `recmodel`, `pool` and `device` labels (`device="emulated"` marks
an emulated GPU wherever its numbers show).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DURATION_BUCKETS_S: tuple[float, ...] = tuple(2.0 ** (exponent / 8) for exponent in range(-88, 25))
ITEM_BUCKETS: tuple[float, ...] = tuple(float(2**power) for power in range(0, 13))
LABELS = ("recmodel", "pool", "device")


class _ProcessMetrics:
    """What pods and the router both export: the config they serve and what they refused."""

    def __init__(self, recmodel: str, pool: str, device: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._labels = {"recmodel": recmodel, "pool": pool, "device": device}
        self.config_generation = self._gauge(
            "recsched_config_generation", "Generation of the config document served."
        )
        self.batch_size = self._gauge(
            "recsched_batch_size_items", "Configured per-request batch size B."
        )
        self.offload_threshold = self._gauge(
            "recsched_offload_threshold_items", "Configured GPU-offload threshold T."
        )
        self._rejected = Counter(
            "recsched_rejected_queries_total",
            "Queries refused, by reason (invalid, too_large, overloaded, not_ready, ...).",
            (*LABELS, "reason"),
            registry=self.registry,
        )
        self.query_items = self._histogram(
            "recsched_query_items", "Query size in items.", ITEM_BUCKETS
        )

    def _gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, LABELS, registry=self.registry).labels(**self._labels)

    def _histogram(self, name: str, documentation: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(
            name, documentation, LABELS, registry=self.registry, buckets=buckets
        ).labels(**self._labels)

    def reject(self, reason: str) -> None:
        self._rejected.labels(reason=reason, **self._labels).inc()


class PodMetrics(_ProcessMetrics):
    """The data-plane metrics of one pod."""

    def __init__(self, recmodel: str, pool: str, device: str) -> None:
        super().__init__(recmodel, pool, device)
        self.query_duration = self._histogram(
            "recsched_query_duration_seconds",
            "Query latency in the pod: arrival to the last request's completion.",
            DURATION_BUCKETS_S,
        )
        self.queue_wait = self._histogram(
            "recsched_queue_wait_seconds",
            "Time a request waited in the pod's queue before a worker (or the GPU) took it.",
            DURATION_BUCKETS_S,
        )
        self.request_compute = self._histogram(
            "recsched_request_compute_seconds",
            "Compute time of one request of B items on one worker (or the GPU).",
            DURATION_BUCKETS_S,
        )
        self.request_batch_items = self._histogram(
            "recsched_request_batch_items", "Items per request after splitting.", ITEM_BUCKETS
        )
        self.workers = self._gauge("recsched_workers", "Model worker threads.")
        self.emulation_lag = self._histogram(
            "recsched_emulation_lag_seconds",
            "Emulated GPU only: how far the host's compute ran behind the profiled GPU time.",
            DURATION_BUCKETS_S,
        )
        self.queued_requests = self._gauge(
            "recsched_queued_requests", "Requests waiting for a worker."
        )


class RouterMetrics(_ProcessMetrics):
    """The router's metrics; `pool` on routed series is the pool a query went to."""

    def __init__(self, recmodel: str) -> None:
        super().__init__(recmodel, "router", "none")
        self._recmodel = recmodel
        self._duration = Histogram(
            "recsched_router_query_duration_seconds",
            "Query latency end to end at the router, by the pool that served it.",
            ("recmodel", "pool"),
            registry=self.registry,
            buckets=DURATION_BUCKETS_S,
        )
        self._routed = Counter(
            "recsched_routed_queries_total",
            "Queries routed, by pool.",
            ("recmodel", "pool"),
            registry=self.registry,
        )
        self._fallbacks = Counter(
            "recsched_router_fallbacks_total",
            "Queries meant for the GPU pool sent to the CPU pool: no GPU endpoint was ready.",
            ("recmodel",),
            registry=self.registry,
        )
        self._upstream_errors = Counter(
            "recsched_router_upstream_errors_total",
            "Failed upstream attempts, by pool and kind (connect, timeout, disconnect, 5xx).",
            ("recmodel", "pool", "kind"),
            registry=self.registry,
        )
        self._in_flight = Gauge(
            "recsched_router_in_flight",
            "Queries forwarded and not yet answered, by pool.",
            ("recmodel", "pool"),
            registry=self.registry,
        )
        self._endpoints = Gauge(
            "recsched_router_ready_endpoints",
            "Endpoints whose readiness check passed, by pool.",
            ("recmodel", "pool"),
            registry=self.registry,
        )

    def routed(self, pool: str, duration_s: float) -> None:
        self._routed.labels(recmodel=self._recmodel, pool=pool).inc()
        self._duration.labels(recmodel=self._recmodel, pool=pool).observe(duration_s)

    def fallback(self) -> None:
        self._fallbacks.labels(recmodel=self._recmodel).inc()

    def upstream_error(self, pool: str, kind: str) -> None:
        self._upstream_errors.labels(recmodel=self._recmodel, pool=pool, kind=kind).inc()

    def in_flight(self, pool: str) -> Gauge:
        return self._in_flight.labels(recmodel=self._recmodel, pool=pool)

    def ready_endpoints(self, pool: str, count: int) -> None:
        self._endpoints.labels(recmodel=self._recmodel, pool=pool).set(count)
