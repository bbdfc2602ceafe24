"""Picks the app for a role: the pod's OIP server or the router in front of the pools."""

from __future__ import annotations

from starlette.types import ASGIApp

from recsched_pod.settings import PodSettings


def create_role_app(settings: PodSettings) -> ASGIApp:
    if settings.role == "router":
        from recsched_pod.router import create_router_app

        return create_router_app(settings)
    from recsched_pod.server import create_app

    return create_app(settings)
