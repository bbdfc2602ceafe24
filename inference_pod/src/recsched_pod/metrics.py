"""Prometheus metrics of a pod or router, on a registry of its own (one per app instance).

Durations are histograms in seconds with log-spaced buckets 2^(1/8) apart (about 9% wide) from
0.5 ms to 8 s, so `histogram_quantile` resolves a p95 between 1 ms and 2 s to within about 5%
and quantiles aggregate across pods (DESIGN.md section 3). Sizes are histograms in items on powers
of two.
Every series carries the `recmodel` and `pool` labels.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DURATION_BUCKETS_S: tuple[float, ...] = tuple(2.0 ** (exponent / 8) for exponent in range(-88, 25))
ITEM_BUCKETS: tuple[float, ...] = tuple(float(2**power) for power in range(0, 13))
LABELS = ("recmodel", "pool")


class PodMetrics:
    """The data-plane metrics of one process, bound to its (recmodel, pool) labels."""

    def __init__(self, recmodel: str, pool: str, device: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"recmodel": recmodel, "pool": pool}
        registry = self.registry

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, LABELS, registry=registry, buckets=buckets)

        self.query_duration = histogram(
            "recsched_query_duration_seconds",
            "Query latency in the pod: arrival to the last request's completion.",
            DURATION_BUCKETS_S,
        ).labels(**labels)
        self.queue_wait = histogram(
            "recsched_queue_wait_seconds",
            "Time a request waited in the pod's queue before a worker took it.",
            DURATION_BUCKETS_S,
        ).labels(**labels)
        self.request_compute = histogram(
            "recsched_request_compute_seconds",
            "Model compute time of one request of B items on one worker.",
            DURATION_BUCKETS_S,
        ).labels(**labels)
        self.query_items = histogram(
            "recsched_query_items", "Query size in items.", ITEM_BUCKETS
        ).labels(**labels)
        self.request_batch_items = histogram(
            "recsched_request_batch_items", "Items per request after splitting.", ITEM_BUCKETS
        ).labels(**labels)
        self.config_generation = Gauge(
            "recsched_config_generation",
            "Generation of the config document served.",
            LABELS,
            registry=registry,
        ).labels(**labels)
        self.batch_size = Gauge(
            "recsched_batch_size_items",
            "Configured per-request batch size B.",
            LABELS,
            registry=registry,
        ).labels(**labels)
        self.offload_threshold = Gauge(
            "recsched_offload_threshold_items",
            "Configured GPU-offload threshold T.",
            LABELS,
            registry=registry,
        ).labels(**labels)
        self.workers = Gauge(
            "recsched_workers", "Model worker threads.", LABELS, registry=registry
        ).labels(**labels)
        self.queued_requests = Gauge(
            "recsched_queued_requests", "Requests waiting for a worker.", LABELS, registry=registry
        ).labels(**labels)
        self._rejected = Counter(
            "recsched_rejected_queries_total",
            "Queries refused, by reason (invalid, too_large, overloaded, not_ready, ...).",
            (*LABELS, "reason"),
            registry=registry,
        )
        self._labels = labels
        Gauge(
            "recsched_device_info",
            "Device this process computes on (1 for the active one).",
            (*LABELS, "device"),
            registry=registry,
        ).labels(device=device, **labels).set(1)

    def reject(self, reason: str) -> None:
        self._rejected.labels(reason=reason, **self._labels).inc()
