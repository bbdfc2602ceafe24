"""Pods as real processes (`python -m recsched_pod`) on loopback, for tests that kill one or that
need it in its own process (another process scrapes it, or the GIL must not be shared)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.ports import free_port
from support.waiting import wait_until


@dataclass(frozen=True)
class PodProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


def start_pod_process(
    args: Sequence[str], log_path: Path, ready_timeout_s: float = 60.0
) -> PodProcess:
    """Start `recsched-pod ARGS` on a free loopback port, logging to `log_path`; returns once
    `/v2/health/ready` answers 200, or raises with the pod's log."""
    port = free_port()
    command = [sys.executable, "-m", "recsched_pod", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [*command, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    pod = PodProcess(process, port, log_path)

    def ready() -> bool:
        if process.poll() is not None:  # not retried: fails at once
            raise RuntimeError(f"pod exited during start-up: {log_path.read_text()}")
        try:
            return httpx.get(pod.url + "/v2/health/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout_s=ready_timeout_s, interval_s=0.1)
    except AssertionError:
        stop_process(process)
        message = f"pod not ready in {ready_timeout_s} s: {log_path.read_text()}"
        raise TimeoutError(message) from None
    return pod


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Terminate, and kill what does not exit within `timeout_s`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)
