"""Tuning round trips: fake router and CPU pod servers that accept pushes and export the pod metric
contract, with a latency that depends on the batch size they serve (best at 64 items), and the
operator (kopf against the emulator) observing, deciding with the real tuner, pushing configs and
recording status and Events. One test observes through a real Prometheus (tests/support's helper)
and the tuner's PrometheusSource; the other feeds observations straight from the fakes, which pins
the actuation path down without PromQL timing in the way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from support.kube_emulator import KubeEmulator
from support.operator_harness import create, eventually, obj, operator_settings, running_operator
from support.prometheus_server import requires_prometheus, running_prometheus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
BUCKETS_S = tuple(2.0 ** (exponent / 8) for exponent in range(-88, 25))
RM = "recsched.io/v1alpha1/recmodels"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FakePod:
    """Accepts config pushes (bearer token) and exports latency that depends on the batch size."""

    def __init__(self, role: str, token: str, seed: int) -> None:
        self.role, self.token, self.random = role, token, random.Random(seed)
        self.document = {"generation": 1, "batchSize": 32, "offloadThreshold": 1025, "workers": 2}
        self.pushes: list[dict[str, int]] = []
        self.registry = CollectorRegistry()
        labels = {"recmodel": "rm1", "pool": role, "device": "none" if role == "router" else "cpu"}
        self.gauges = {
            key: Gauge(name, name, list(labels), registry=self.registry).labels(**labels)
            for key, name in (
                ("generation", "recsched_config_generation"),
                ("batchSize", "recsched_batch_size_items"),
                ("offloadThreshold", "recsched_offload_threshold_items"),
            )
        }
        if role == "router":
            self.duration = Histogram(
                "recsched_router_query_duration_seconds",
                "e2e",
                ["recmodel", "pool"],
                registry=self.registry,
                buckets=BUCKETS_S,
            ).labels(recmodel="rm1", pool="cpu")
        else:
            self.duration = Histogram(
                "recsched_query_duration_seconds",
                "pod",
                list(labels),
                registry=self.registry,
                buckets=BUCKETS_S,
            ).labels(**labels)
        self.sizes = Histogram(
            "recsched_query_items",
            "sizes",
            list(labels),
            registry=self.registry,
            buckets=tuple(float(2**p) for p in range(13)),
        ).labels(**labels)
        self._export()

    def _export(self) -> None:
        for key, gauge in self.gauges.items():
            gauge.set(self.document[key])

    def latency_s(self) -> float:
        distance = abs(math.log2(self.document["batchSize"]) - 6)
        return (0.010 + 0.006 * distance) * self.random.uniform(0.95, 1.05)

    async def serve_traffic(self) -> None:
        while True:
            for _ in range(20):  # 400 queries/s
                self.duration.observe(self.latency_s())
                self.sizes.observe(self.random.choice((16, 64, 128)))
            await asyncio.sleep(0.05)

    def app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(
                body=generate_latest(self.registry), content_type="text/plain", charset="utf-8"
            )

        async def admin(request: web.Request) -> web.Response:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return web.json_response({"error": "unauthorized"}, status=401)
            if request.method == "PUT":
                document = await request.json()
                self.pushes.append(document)
                if document["generation"] > self.document["generation"]:
                    self.document = document
                    self._export()
            return web.json_response(self.document)

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_route("*", "/admin/config", admin)
        return app


@contextlib.asynccontextmanager
async def serve(fake: FakePod) -> AsyncIterator[int]:
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    traffic = asyncio.create_task(fake.serve_traffic())
    try:
        yield port
    finally:
        traffic.cancel()
        await runner.cleanup()


def pod(name: str, role: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ns1",
            "labels": {"recsched.io/recmodel": "rm1", "recsched.io/pool": role},
        },
        "spec": {
            "containers": [{"name": "model", "ports": [{"name": "http", "containerPort": port}]}]
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


TOKEN = "round-trip-token"


def recmodel_body() -> dict[str, Any]:
    return {
        "apiVersion": "recsched.io/v1alpha1",
        "kind": "RecModel",
        "metadata": {"name": "rm1", "namespace": "ns1"},
        "spec": {
            "model": {"name": "rmc1", "scale": 0.01, "image": "recsched-pod:test"},
            "slo": {"percentile": 95, "targetMs": 50, "windowSeconds": 10, "minSamples": 50},
            "pools": {"cpu": {"replicas": 1, "workers": 2}},
            "tuning": {
                "intervalSeconds": 2,
                "cooldownSeconds": 0,
                "batchSize": {"min": 1, "max": 256, "initial": 32},
            },
        },
    }


def seed(kube: KubeEmulator, router_port: int, cpu_port: int) -> None:
    """The Secret the fakes check tokens against, and the two Pods the operator pushes to."""
    kube.objects["v1/secrets", "ns1", "rm1-admin-token"] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "rm1-admin-token", "namespace": "ns1"},
        "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
    }
    kube.objects["v1/pods", "ns1", "rm1-router-0"] = pod("rm1-router-0", "router", router_port)
    kube.objects["v1/pods", "ns1", "rm1-cpu-0"] = pod("rm1-cpu-0", "cpu", cpu_port)


def event_reasons(kube: KubeEmulator) -> set[str]:
    return {str(o.get("reason")) for (r, _, _), o in kube.objects.items() if r.plural == "events"}


async def run_until_tuned(kube: KubeEmulator, settings: Any, timeout_s: float) -> dict[str, Any]:
    async with running_operator(settings):
        await create(kube, recmodel_body())
        await eventually(
            lambda: obj(kube, RM, "ns1", "rm1")["status"]["applied"]["generation"] >= 2,
            timeout_s=timeout_s,
        )
        # Events are posted in the background: wait for them before the operator stops.
        await eventually(lambda: {"ConfigApplied"} <= event_reasons(kube))
        await eventually(lambda: any(r.startswith("Tuning") for r in event_reasons(kube)))
        status: dict[str, Any] = obj(kube, RM, "ns1", "rm1")["status"]
    return status


def assert_tuned(kube: KubeEmulator, status: dict[str, Any], fakes: list[FakePod]) -> None:
    generation = status["applied"]["generation"]
    served = [fake.document for fake in fakes]
    assert all(doc["generation"] >= generation >= 2 for doc in served), (served, status)
    assert status["applied"]["podsAcknowledged"] == status["applied"]["podsTotal"] == len(fakes)
    assert status["applied"]["batchSize"] != 32  # moved off the initial batch size
    assert status["history"][-1]["batchSize"] == status["applied"]["batchSize"]
    assert status["lastDecision"]["before"]["batchSize"] == 32 or len(status["history"]) > 1
    assert status["observed"]["p95Ms"] > 0 and status["observed"]["samples"] >= 50
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["MetricsAvailable"]["status"] == "True"


@requires_prometheus
async def test_operator_tunes_pods_through_prometheus(kube: KubeEmulator) -> None:
    router, cpu = FakePod("router", TOKEN, seed=1), FakePod("cpu", TOKEN, seed=2)
    async with serve(router) as router_port, serve(cpu) as cpu_port:
        seed(kube, router_port, cpu_port)
        targets = [f"127.0.0.1:{router_port}", f"127.0.0.1:{cpu_port}"]
        with running_prometheus(targets=targets, labels={"namespace": "ns1"}) as server:
            settings = operator_settings(kube, prometheus_url=server.url)
            status = await run_until_tuned(kube, settings, 90)
    assert_tuned(kube, status, [router, cpu])


async def test_operator_tunes_pods_from_a_direct_source(
    kube: KubeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Observations computed from what the fake CPU pod serves stand in for Prometheus: the
    cycle takes its source from the daemon, so only the source is replaced."""
    from recsched_operator.reconcile import tuning_daemon
    from recsched_operator.tuner.observation import Observation
    from recsched_operator.tuner.settings import SloTarget

    router, cpu = FakePod("router", TOKEN, seed=1), FakePod("cpu", TOKEN, seed=2)

    class FakeSource:
        def observe(
            self, recmodel: str, namespace: str | None, slo: SloTarget, now_s: float
        ) -> Observation:
            latencies_ms = sorted(cpu.latency_s() * 1000 for _ in range(400))
            return Observation(
                at_s=now_s,
                qps=400.0,
                p95_ms=latencies_ms[379],
                p99_ms=latencies_ms[395],
                samples=4000,
                batch_size_items=cpu.document["batchSize"],
                offload_threshold_items=cpu.document["offloadThreshold"],
                mean_query_items=69.0,
                window_s=slo.window_s,
            )

    monkeypatch.setattr(tuning_daemon, "observation_source", lambda ctx, spec: FakeSource())
    async with serve(router) as router_port, serve(cpu) as cpu_port:
        seed(kube, router_port, cpu_port)
        status = await run_until_tuned(kube, operator_settings(kube), 60)
    assert_tuned(kube, status, [router, cpu])
    assert status["tuningState"]["decisions"] >= 1
