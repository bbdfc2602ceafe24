"""Picks the app for a role: the pod's OIP server or the router in front of the pools."""

from __future__ import annotations

import functools
from typing import Any

from starlette.types import ASGIApp

from recsched_pod.settings import PodSettings


def create_role_app(settings: PodSettings) -> ASGIApp:
    if settings.role == "router":
        from recsched_pod.router import create_router_app

        return create_router_app(settings)
    from recsched_pod.server import create_app

    return create_app(settings)


def http_protocol_for(settings: PodSettings) -> Any:
    """uvicorn's `http=` for a role: the router reads bodies straight into one buffer
    (`router_http`), refusing any above its body limit before reading; pods use uvicorn's own."""
    if settings.role != "router":
        return "auto"
    from recsched_pod.http_shell import max_body_bytes
    from recsched_pod.models import model_spec
    from recsched_pod.router_http import RouterHttpProtocol

    limit = max_body_bytes(model_spec(settings.model, settings.scale), settings.max_query_items)
    return functools.partial(RouterHttpProtocol, max_body_bytes=limit)
