"""Operator metrics and the `/healthz` + `/metrics` server on port 8080.

One private registry, so tests can start several operators in one process without duplicate
series. aiohttp serves it because kopf already runs on aiohttp and the same event loop; no thread.
Every series is labelled by `namespace` and `recmodel` and forgotten when the RecModel is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LABELS = ("namespace", "recmodel")


@dataclass
class OperatorMetrics:
    """The tuner's series (DESIGN.md section 3: names start `recsched_`, units in names)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.decisions = Counter(
            "recsched_tuner_decisions_total",
            "Tuning decisions by action.",
            [*_LABELS, "action"],
            registry=r,
        )
        self.errors = Counter(
            "recsched_operator_errors_total",
            "Reconcile and tuning errors by stage.",
            [*_LABELS, "stage"],
            registry=r,
        )
        self.push_failures = Counter(
            "recsched_tuner_push_failures_total",
            "Pods that did not acknowledge a config push.",
            _LABELS,
            registry=r,
        )
        self.observed_latency = Gauge(
            "recsched_tuner_observed_latency_seconds",
            "Observed end-to-end latency quantile.",
            [*_LABELS, "quantile"],
            registry=r,
        )
        self.observed_qps = Gauge(
            "recsched_tuner_observed_qps", "Observed queries per second.", _LABELS, registry=r
        )
        self.slo_target = Gauge(
            "recsched_slo_target_seconds", "Latency target of the SLO.", _LABELS, registry=r
        )
        # Which percentile the SLO is on, as a label (value always 1), so alert rules can pick
        # the matching quantile of the latency histogram: PromQL takes no per-series quantile.
        self.slo_info = Gauge(
            "recsched_slo_info",
            "Always 1; `quantile` is the SLO's percentile as a fraction (0.95 or 0.99).",
            [*_LABELS, "quantile"],
            registry=r,
        )
        self.batch_size = Gauge(
            "recsched_tuner_batch_size_items", "Applied CPU batch size.", _LABELS, registry=r
        )
        self.offload_threshold = Gauge(
            "recsched_tuner_offload_threshold_items",
            "Applied offload threshold.",
            _LABELS,
            registry=r,
        )
        self.generation = Gauge(
            "recsched_tuner_config_generation", "Applied config generation.", _LABELS, registry=r
        )
        self.tuning_held = Gauge(
            "recsched_tuning_held",
            "1 while tuning is paused (annotation) or spec.tuning.mode is off, else 0.",
            _LABELS,
            registry=r,
        )

    def record_slo(self, namespace: str, recmodel: str, percentile: int, target_s: float) -> None:
        """The SLO's target and percentile (`recsched_slo_target_seconds`, `recsched_slo_info`)."""
        self.slo_target.labels(namespace, recmodel).set(target_s)
        for labels in list(self.slo_info._metrics):
            if labels[:2] == (namespace, recmodel):
                self.slo_info.remove(*labels)
        self.slo_info.labels(namespace, recmodel, f"{percentile / 100:.2f}").set(1)

    def forget(self, namespace: str, recmodel: str) -> None:
        """Drop every series of a deleted RecModel."""
        for metric in (
            self.decisions,
            self.errors,
            self.push_failures,
            self.observed_latency,
            self.observed_qps,
            self.slo_target,
            self.slo_info,
            self.batch_size,
            self.offload_threshold,
            self.generation,
            self.tuning_held,
        ):
            for labels in list(metric._metrics):
                if labels[:2] == (namespace, recmodel):
                    metric.remove(*labels)


class HealthServer:
    """Serves `/healthz` (200 while the operator runs) and `/metrics` on one port."""

    def __init__(self, metrics: OperatorMetrics, *, host: str, port: int) -> None:
        self._metrics = metrics
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _metrics_page(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self.bound_port = self._port
        for address in self._runner.addresses:  # (host, port, ...) per listening socket
            self.bound_port = int(address[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
