"""Fixtures for pod tests: a real pod server on loopback serving RMC1 at a small scale."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recsched_pod.server import create_app
from support.asgi_server import serve_app
from support.pod_fixtures import RunningPod, pod_settings


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPod]:
    tmp_path = tmp_path_factory.mktemp("pod")
    settings = pod_settings(tmp_path)
    with serve_app(create_app(settings), ready_path="/v2/health/ready") as url:
        assert settings.config_path is not None
        yield RunningPod(url, settings, settings.config_path)
