"""A CPU pod killed (SIGKILL) under load behind the router: every query still gets an answer,
because the router retries failed connections on the surviving pod."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from recsched_pod.router import create_router_app
from support.asgi_server import free_port, serve_router
from support.pod_fixtures import pod_settings, rmc1_query

pytestmark = pytest.mark.slow


def start_pod_process(tmp_path: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (tmp_path / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recsched_pod",
            "--model",
            "rmc1",
            "--scale",
            "0.001",
            "--port",
            str(port),
            "--workers",
            "1",
            "--batch-size",
            "8",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return process, f"127.0.0.1:{port}"
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"pod {name} did not start: {(tmp_path / f'{name}.log').read_text()}")


@pytest.fixture
def two_pods(tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen[bytes], str]]]:
    pods = [start_pod_process(tmp_path, "a"), start_pod_process(tmp_path, "b")]
    try:
        yield pods
    finally:
        for process, _ in pods:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)


def test_killed_endpoint_under_load_loses_no_query(
    tmp_path: Path, two_pods: list[tuple[subprocess.Popen[bytes], str]]
) -> None:
    router = pod_settings(
        tmp_path,
        role="router",
        config_path=None,
        health_check_s=0.2,
        cpu_endpoints=",".join(address for _, address in two_pods),
    )
    body = rmc1_query(64)
    statuses: list[int] = []
    lock = threading.Lock()
    with serve_router(create_router_app(router)) as router_url:
        time.sleep(0.5)  # both endpoints pass a readiness check

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
        while len(statuses) < 30:
            time.sleep(0.01)
        victim, _ = two_pods[0]
        os.kill(victim.pid, signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=120)
        time.sleep(0.5)  # past the next readiness check
        metrics = httpx.get(router_url + "/metrics").text
    assert len(statuses) == 160
    assert statuses.count(200) == 160, sorted(set(statuses))
    assert 'recsched_router_ready_endpoints{pool="cpu",recmodel="test-rm"} 1.0' in metrics
