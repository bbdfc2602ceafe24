"""Picks the app for a role: the pod's OIP server or the router in front of the pools."""

from __future__ import annotations

import functools
from typing import Any

from starlette.types import ASGIApp

from recsched_pod.settings import PodSettings


def create_role_app(settings: PodSettings) -> ASGIApp:
    if settings.role == "router":
        from recsched_pod.router.app import create_router_app

        return create_router_app(settings)
    from recsched_pod.dataplane.server import create_app

    return create_app(settings)


def http_protocol_for(settings: PodSettings) -> Any:
    """uvicorn's `http=` for the router and the pods alike (`settings.http_server`): a body
    above the role's limit is refused before it is read, a request not received whole within
    `request_read_timeout_s` gets 408."""
    from recsched_pod.http.bounded_httptools import BoundedHttpToolsProtocol
    from recsched_pod.http.lean_http import LeanHttpProtocol
    from recsched_pod.http.shell import max_body_bytes
    from recsched_pod.models import model_spec

    limit = max_body_bytes(model_spec(settings.model, settings.scale), settings.max_query_items)
    protocol = LeanHttpProtocol if settings.http_server == "lean" else BoundedHttpToolsProtocol
    return functools.partial(
        protocol, max_body_bytes=limit, read_timeout_s=settings.request_read_timeout_s
    )
