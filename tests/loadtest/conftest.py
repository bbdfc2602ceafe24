"""Fixtures for the load test's tests: one OIP test server subprocess per session.

The server's service time is an asyncio sleep (not CPU work), so other processes competing for the
two CPU cores add jitter but no systematic bias. Each test resets the server's behaviour first.
The suite runs with --import-mode=importlib, so this folder is put on sys.path for the helper
modules; their names start with `loadtest_` to stay unique suite-wide.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from loadtest_server_process import TestServer, running_test_server


@pytest.fixture(scope="session")
def test_server() -> Iterator[TestServer]:
    with running_test_server() as server:
        yield server


@pytest.fixture
def fresh_server(test_server: TestServer) -> TestServer:
    test_server.set_behaviour()
    return test_server
