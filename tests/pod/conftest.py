"""Fixtures for pod tests: a real pod server on loopback serving RMC1 at a small scale, with the
HTTP protocol `recsched-pod` runs (`lean_http`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.asgi_server import serve_pod
from support.pod_fixtures import RunningPod, pod_settings


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPod]:
    tmp_path = tmp_path_factory.mktemp("pod")
    settings = pod_settings(tmp_path)
    with serve_pod(settings) as url:
        assert settings.config_path is not None
        yield RunningPod(url, settings, settings.config_path)
