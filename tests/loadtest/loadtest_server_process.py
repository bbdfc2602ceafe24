"""Starts `loadtest_oip_server.py` as a subprocess and talks to its test hooks (test helper)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from support.waiting import wait_until

SERVER_SCRIPT = Path(__file__).with_name("loadtest_oip_server.py")
ADMIN_TOKEN = "test-token"


class TestServer:
    __test__ = False  # not a test class, despite the name

    def __init__(self, url: str) -> None:
        self.url = url

    def set_behaviour(self, **behaviour: Any) -> dict[str, Any]:
        """Reset the queue, the config document and the admin log; apply `behaviour`."""
        response = httpx.put(f"{self.url}/_test/behaviour", json=behaviour, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.url}/_test/stats", timeout=10).json()
        return result


@contextmanager
def running_test_server(startup_timeout_s: float = 30.0) -> Iterator[TestServer]:
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("PORT "), f"test server did not start: {line!r}"
        server = TestServer(f"http://127.0.0.1:{int(line.split()[1])}")

        def ready() -> bool:
            try:
                return httpx.get(f"{server.url}/v2/health/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout_s=startup_timeout_s, interval_s=0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
