"""A CPU pod killed (SIGKILL) under load behind the router: every query still gets an answer,
because the router retries failed connections on the surviving pod."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from recsched_pod.router.app import create_router_app
from support.asgi_server import serve_router
from support.pod_fixtures import pod_settings, rmc1_query
from support.pod_process import PodProcess, start_pod_process, stop_process
from support.waiting import wait_until

pytestmark = pytest.mark.slow


def ready_endpoints(router_url: str) -> float:
    """The router's count of ready CPU endpoints, from its /metrics."""
    series = 'recsched_router_ready_endpoints{pool="cpu",recmodel="test-rm"} '
    for line in httpx.get(router_url + "/metrics").text.splitlines():
        if line.startswith(series):
            return float(line.removeprefix(series))
    raise AssertionError("ready endpoints not exported")


@pytest.fixture
def two_pods(tmp_path: Path) -> Iterator[list[PodProcess]]:
    args = ["--model", "rmc1", "--scale", "0.001", "--workers", "1", "--batch-size", "8"]
    args += ["--log-level", "warning"]
    pods = [start_pod_process(args, tmp_path / f"{name}.log") for name in ("a", "b")]
    try:
        yield pods
    finally:
        for pod in pods:
            stop_process(pod.process)


def test_killed_endpoint_under_load_loses_no_query(
    tmp_path: Path, two_pods: list[PodProcess]
) -> None:
    router = pod_settings(
        tmp_path,
        role="router",
        config_path=None,
        health_check_s=0.2,
        cpu_endpoints=",".join(pod.address for pod in two_pods),
    )
    body = rmc1_query(64)
    statuses: list[int] = []
    lock = threading.Lock()
    with serve_router(create_router_app(router)) as router_url:
        wait_until(lambda: ready_endpoints(router_url) == 2)

        def client(count: int) -> None:
            with httpx.Client(timeout=30) as session:
                for _ in range(count):
                    status = session.post(
                        router_url + "/v2/models/rmc1/infer", json=body
                    ).status_code
                    with lock:
                        statuses.append(status)

        threads = [threading.Thread(target=client, args=(40,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(statuses) >= 30, timeout_s=60)
        os.kill(two_pods[0].process.pid, signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=120)
        # The next readiness checks (every 0.2 s) find the killed pod gone.
        wait_until(lambda: ready_endpoints(router_url) == 1)
    assert len(statuses) == 160
    assert statuses.count(200) == 160, sorted(set(statuses))
