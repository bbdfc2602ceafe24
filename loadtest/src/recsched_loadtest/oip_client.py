"""Control-plane calls to an OIP v2 endpoint: readiness, metadata, live config (I/O).

These are few and not timed, so they use httpx directly. The config document is the pod's (its
`recsched_pod.config_document` validates it; the operator writes the same format): the load test
does not model it. `push_config` takes the document the endpoint serves (`GET /admin/config`),
changes only the knobs asked for, sends it whole under the next generation (`PUT /admin/config`,
the same JSON object the operator pushes) and trusts the endpoint's own answer, `applied` with a
`reason`, as the acknowledgement; a document the endpoint rejects comes back as its 400 message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx

from recsched_loadtest.errors import EndpointError
from recsched_loadtest.signature import ModelSignature, parse_model_metadata

_CONTROL_TIMEOUT_S = 10.0


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def wait_until_ready(base_url: str, timeout_s: float = 30.0, poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    async with httpx.AsyncClient(base_url=base_url, timeout=_CONTROL_TIMEOUT_S) as client:
        while time.monotonic() < deadline:
            try:
                response = await client.get("/v2/health/ready")
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            await asyncio.sleep(poll_s)
    raise EndpointError(f"{base_url} not ready after {timeout_s:g} s ({last})")


async def fetch_signature(base_url: str, model: str) -> ModelSignature:
    async with httpx.AsyncClient(base_url=base_url, timeout=_CONTROL_TIMEOUT_S) as client:
        try:
            response = await client.get(f"/v2/models/{model}")
        except httpx.TransportError as exc:
            raise EndpointError(f"cannot reach {base_url}: {exc!r}") from exc
    if response.status_code != 200:
        raise EndpointError(
            f"GET /v2/models/{model} answered HTTP {response.status_code}: {response.text[:200]}"
        )
    return parse_model_metadata(response.json())


async def _admin_call(
    method: str, base_url: str, token: str | None, body: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=_CONTROL_TIMEOUT_S) as client:
        try:
            response = await client.request(
                method, "/admin/config", headers=_auth(token), json=body
            )
        except httpx.TransportError as exc:
            raise EndpointError(f"cannot reach {base_url}/admin/config: {exc!r}") from exc
    if response.status_code == 401:
        raise EndpointError(f"{method} /admin/config: 401, the admin token is missing or wrong")
    if response.status_code >= 300:
        raise EndpointError(
            f"{method} /admin/config answered HTTP {response.status_code}: {response.text[:200]}"
        )
    document = response.json() if response.content else {}
    if not isinstance(document, dict):
        raise EndpointError(f"{method} /admin/config: expected a JSON object")
    return document


async def get_config(base_url: str, token: str | None) -> dict[str, Any]:
    return await _admin_call("GET", base_url, token)


async def push_config(base_url: str, token: str | None, knobs: Mapping[str, Any]) -> dict[str, Any]:
    """Apply `knobs` on top of the served document with the next generation; return what the
    endpoint then serves."""
    current = await get_config(base_url, token)
    try:
        generation = int(current.get("generation", 0)) + 1
    except (TypeError, ValueError) as exc:
        raise EndpointError(f"/admin/config has a non-integer generation: {current!r}") from exc
    answer = await _admin_call(
        "PUT", base_url, token, {**current, **knobs, "generation": generation}
    )
    served = answer.get("config")
    if answer.get("applied") is not True or not isinstance(served, dict):
        raise EndpointError(
            f"generation {generation} not applied: {answer.get('reason', 'no reason given')}"
        )
    return served
