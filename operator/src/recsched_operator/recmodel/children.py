"""Pure builders of a RecModel's children other than Deployments: token, Services (the
ConfigMap comes from `config_document`, which owns the config document).

`render_children` lists every object a reconcile applies, in apply order (config and token before
the Deployments that mount them). The Secret's token is an argument, so rendering stays pure and
`recsched-operator render` can show the manifests without ever seeing a real token.
"""

from __future__ import annotations

from typing import Any

from recsched_operator.recmodel.api import RecModelSpec

# Re-exported (`as`) for modules that still import them from here; new code imports
# `recmodel.config_document` (issue 14).
from recsched_operator.recmodel.config_document import ConfigDocument, render_configmap
from recsched_operator.recmodel.deployments import Role, render_deployment, replicas_for
from recsched_operator.recmodel.naming import (
    HTTP_PORT,
    TOKEN_KEY,
    Owner,
    child_metadata,
    headless_service_name,
    router_service_name,
    secret_name,
    selector_labels,
)

ROLES: tuple[Role, ...] = ("router", "cpu", "gpu")


def render_secret(owner: Owner, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": child_metadata(owner, secret_name(owner.name), component="admin-token"),
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token},
    }


def _service_port() -> dict[str, Any]:
    return {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}


def render_router_service(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(owner, router_service_name(owner.name), component="router"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(owner.name, "router"),
            "ports": [_service_port()],
        },
    }


def render_headless_service(owner: Owner, pool: str) -> dict[str, Any]:
    """The per-pool headless Service whose DNS name lists the pool's ready pod IPs."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(owner, headless_service_name(owner.name, pool), component=pool),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": False,
            "selector": selector_labels(owner.name, pool),
            "ports": [_service_port()],
        },
    }


def wanted_roles(spec: RecModelSpec) -> tuple[Role, ...]:
    """Roles that get a Deployment: a pool with 0 replicas gets none."""
    return tuple(role for role in ROLES if replicas_for(spec, role) > 0)


def render_children(
    owner: Owner, spec: RecModelSpec, config: ConfigDocument
) -> list[dict[str, Any]]:
    """Every child applied on reconcile except the Secret (created once, see controller)."""
    children: list[dict[str, Any]] = [
        render_configmap(owner, config),
        render_router_service(owner),
        render_headless_service(owner, "cpu"),
        render_headless_service(owner, "gpu"),
    ]
    children += [render_deployment(owner, spec, role) for role in wanted_roles(spec)]
    return children
