"""Push a config document to every ready pod and check that each now serves its generation.

Pods are found by label through the API (not DNS), so the operator knows exactly which pods it
reached. A push is `PUT /admin/config` with the RecModel's bearer token; the check is
`GET /admin/config`, which returns the document being served. Pods that miss a push still converge:
they re-read the mounted ConfigMap, and the next tuning step pushes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from recsched_operator.recmodel.naming import HTTP_PORT


@dataclass(frozen=True)
class PodTarget:
    """One ready pod and the base URL of its admin API."""

    name: str
    base_url: str


@dataclass(frozen=True)
class PushResult:
    pod: str
    acknowledged: bool
    served_generation: int | None
    error: str | None


def _http_port(pod: Mapping[str, Any]) -> int:
    for container in pod.get("spec", {}).get("containers", []):
        for port in container.get("ports", []):
            if port.get("name") == "http":
                return int(port["containerPort"])
    return HTTP_PORT


def _is_ready(pod: Mapping[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    status = pod.get("status", {})
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )


def ready_pod_targets(pods: Sequence[Mapping[str, Any]]) -> list[PodTarget]:
    """The pods to push to: running, Ready, with an IP; sorted by name for stable order."""
    targets = [
        PodTarget(
            name=str(pod["metadata"]["name"]),
            base_url=f"http://{pod['status']['podIP']}:{_http_port(pod)}",
        )
        for pod in pods
        if _is_ready(pod)
    ]
    return sorted(targets, key=lambda target: target.name)


async def _push_one(
    client: httpx.AsyncClient, target: PodTarget, document: Mapping[str, int], token: str
) -> PushResult:
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{target.base_url}/admin/config"
    try:
        put = await client.put(url, json=dict(document), headers=headers)
        if put.status_code >= 400:
            return PushResult(target.name, False, None, f"PUT returned HTTP {put.status_code}")
        got = await client.get(url, headers=headers)
        if got.status_code >= 400:
            return PushResult(target.name, False, None, f"GET returned HTTP {got.status_code}")
        served = int(got.json()["generation"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return PushResult(target.name, False, None, f"{type(exc).__name__}: {exc}")
    acknowledged = served >= document["generation"]
    error = None if acknowledged else f"serves generation {served} < {document['generation']}"
    return PushResult(target.name, acknowledged, served, error)


async def push_config(
    targets: Sequence[PodTarget], document: Mapping[str, int], token: str, *, timeout_s: float
) -> list[PushResult]:
    """Push to all targets concurrently; never raises for a pod's failure."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        return list(await asyncio.gather(*(_push_one(client, t, document, token) for t in targets)))
