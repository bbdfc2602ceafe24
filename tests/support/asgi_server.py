"""Run an ASGI app on a real loopback port in a background thread (uvicorn, lifespan included)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn

from support.ports import free_port as free_port  # re-exported: tests import it from here
from support.waiting import wait_until


@contextlib.contextmanager
def serve_app(
    app: Any, ready_path: str | None = None, timeout_s: float = 60.0, http: Any = "auto"
) -> Iterator[str]:
    """Yield the base URL of `app` served on 127.0.0.1; waits for `ready_path` to answer 200.
    `http` is uvicorn's protocol option (a name or a protocol class)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=http, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    path = ready_path or "/"

    def ready() -> bool:
        if not thread.is_alive():  # not retried: fails at once
            raise RuntimeError("server thread exited during start-up")
        try:
            response = httpx.get(base_url + path, timeout=1.0)
        except httpx.TransportError:
            return False
        return ready_path is None or response.status_code == 200

    try:
        try:
            wait_until(ready, timeout_s=timeout_s, interval_s=0.05)
        except AssertionError:
            raise TimeoutError(f"{base_url}{path} not ready within {timeout_s} s") from None
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve_pod(
    settings: Any, app: Any = None, ready_path: str = "/v2/health/ready"
) -> contextlib.AbstractContextManager[str]:
    """Serve a pod (or `app`, built from `settings`) the way `recsched-pod` does: with the
    protocol `http_protocol_for(settings)` picks, `LeanHttpProtocol` and the role's body limit."""
    from recsched_pod.app_factory import http_protocol_for
    from recsched_pod.dataplane.server import create_app

    served = create_app(settings) if app is None else app
    return serve_app(served, ready_path, http=http_protocol_for(settings))


def serve_router(
    app: Any, ready_path: str = "/v2/health/ready"
) -> contextlib.AbstractContextManager[str]:
    """Serve a router app the way `recsched-pod --role router` does: with `LeanHttpProtocol`."""
    from recsched_pod.http.lean_http import LeanHttpProtocol

    return serve_app(app, ready_path, http=LeanHttpProtocol)
