"""The operator's Kubernetes API calls, through the official client's asyncio flavour
(`kubernetes.aio`): apply, create, get, list, delete, patch status, plus the two reads the
start-up peering check needs (API discovery, object names).

Children are written by server-side apply with the field manager `recsched-operator`; the
connection is kopf's own login (`lifecycle.kube_connection`), so kopf and these calls always talk
to the same server as the same user.

Decision (issue 14, 2026-12-03, the lead's call; replaces the same day's decision to keep a
hand-written httpx client and drop the dependency): the operator's own API calls go through the
official, maintained `kubernetes` client, and `kubernetes` is a dependency again (>=37, for
`kubernetes.aio`; tested with 37.0.2). The calls use the generated asyncio `ApiClient` directly
(`param_serialize`, `call_api`, `response_deserialize`: the path every typed API method takes),
so one code path serves core, apps and custom resources alike, and no `DynamicClient`: its
discovery requests would be extra traffic in every emulator test and extra RBAC. Server-side apply
is the client's `application/apply-patch+yaml` content type with `fieldManager` and `force`; the
bearer token is the client's `BearerToken` api key, re-read from `token_path` by its
`refresh_api_key_hook` on every request (projected tokens rotate); CA, client certificate and
insecure mode are `Configuration` fields; its `ApiException` (status, reason, body) becomes
`KubeApiError` carrying the server's `Status.message`, and 404/409 become None/False where they
did before. The client's retries stay off: kopf's `TemporaryError` is the retry policy here.

Costs, measured 2026-12-03 on the shared 2-core dev machine (flock'd, 1-minute load average
1.7-3.5). The import is lazy, in `KubeApi()`, and importing the CLI (`render`, `local`, `--help`)
loads neither it nor kopf. Kopf itself imports `kubernetes.client` whenever the package is installed
(kopf._cogs.helpers.thirdparty), so every operator start loaded the sync client even while it was
off the dependency list. The ~1 s for importing `kubernetes.aio.client` in a bare interpreter
counts pydantic, aiohttp, yaml and urllib3, which the operator loads anyway. Marginal figures:
the 234 modules the operator loads only because of `kubernetes` (`-X importtime` self times up to
the first `KubeApi()`, against fb88adf with the package hidden) cost 0.21-0.38 s (3 runs); the
first `KubeApi()` after importing the handlers took 0.054-0.095 s here against 0.061-0.108 s for
the httpx client (6 interleaved runs each); importing `recsched_operator.reconcile.handlers` took
1.32-1.77 s here, 1.15-1.76 s for fb88adf with `kubernetes` installed (6 runs each) and
1.08-1.51 s with it hidden (3 runs): inside the noise. Installed size: 126 MB (68 MB `aio`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from recsched_operator import __version__
from recsched_operator.errors import KubeApiError
from recsched_operator.recmodel.naming import FIELD_MANAGER

if TYPE_CHECKING:  # the client itself is imported lazily: see the module docstring
    from kubernetes.aio.client import ApiClient, ApiException, Configuration

PLURALS = {
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Service": "services",
    "Deployment": "deployments",
    "Pod": "pods",
    "Event": "events",
    "RecModel": "recmodels",
}
BEARER = "BearerToken"  # the client's name for the bearer-token auth setting


@dataclass(frozen=True)
class KubeConnection:
    """Where the API server is and how to authenticate (mirrors kopf's ConnectionInfo)."""

    server: str
    token: str | None = None
    token_path: str | None = None  # re-read per request: projected tokens rotate
    ca_path: str | None = None
    insecure: bool = False
    certificate_path: str | None = None
    private_key_path: str | None = None


def resource_path(api_version: str, plural: str, namespace: str, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def api_error_message(body: str | None, reason: str | None) -> str:
    """The server's `Status.message` from an error body, else the body, else the HTTP reason."""
    text = body or ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("message") is not None:
        text = str(data["message"])
    return (text or reason or "")[:500]


def client_configuration(connection: KubeConnection) -> Configuration:
    """The official client's `Configuration` for `connection` (imports the client)."""
    from kubernetes.aio.client import Configuration

    config = Configuration(host=connection.server)
    config.verify_ssl = not connection.insecure
    config.ssl_ca_cert = connection.ca_path if not connection.insecure else None
    if connection.certificate_path and connection.private_key_path:
        config.cert_file = connection.certificate_path
        config.key_file = connection.private_key_path
    config.retries = None  # kopf's TemporaryError is the retry policy
    if connection.token_path:
        token_path = Path(connection.token_path)

        def reread_token(configuration: Any) -> None:
            configuration.api_key[BEARER] = token_path.read_text().strip()

        config.api_key[BEARER] = ""
        config.refresh_api_key_hook = cast(Any, reread_token)
    elif connection.token:
        config.api_key[BEARER] = connection.token
    config.api_key_prefix[BEARER] = "Bearer"
    return config


class KubeApi:
    """The handful of API verbs the operator uses; every error becomes `KubeApiError`."""

    def __init__(self, connection: KubeConnection, *, timeout_s: float) -> None:
        import aiohttp
        from kubernetes.aio.client import ApiClient, ApiException

        self._api_exception: type[ApiException] = ApiException
        self._transport_errors = (aiohttp.ClientError, TimeoutError, OSError)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._client: ApiClient = ApiClient(client_configuration(connection))
        self._client.user_agent = f"{FIELD_MANAGER}/{__version__}"
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the operator's cleanup closed the client: nothing should call it anymore."""
        return self._closed

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.close()  # type: ignore[no-untyped-call]

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        params: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        """One call through the client; a non-2xx answer raises its `ApiException`."""
        if self._closed:
            raise KubeApiError(0, f"{method} {path}: the client is closed (operator stopping)")
        headers = {"Accept": "application/json"}
        if body is not None and content_type:
            headers["Content-Type"] = content_type
        try:
            serialized = await self._client.param_serialize(
                method,
                path,
                query_params=list(params),
                header_params=headers,
                body=body,
                auth_settings=[BEARER],
            )
            response = await self._client.call_api(*serialized, _request_timeout=self._timeout)
            await response.read()  # type: ignore[no-untyped-call]
        except self._transport_errors as exc:
            raise KubeApiError(0, f"{method} {path}: {exc!r}") from exc
        result = self._client.response_deserialize(response, {"2XX": "object"})
        return result.data if isinstance(result.data, dict) else {}

    async def _call(
        self,
        method: str,
        path: str,
        *,
        missing_ok: int | None = None,
        body: Any = None,
        content_type: str | None = None,
        params: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any] | None:
        """`_request` with errors mapped to `KubeApiError`; None for the `missing_ok` status."""
        try:
            return await self._request(
                method, path, body=body, content_type=content_type, params=params
            )
        except self._api_exception as exc:
            if missing_ok is not None and exc.status == missing_ok:
                return None
            message = api_error_message(exc.body, exc.reason)
            raise KubeApiError(int(exc.status or 0), message) from exc

    async def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply `obj` (creates it when absent), forcing our field ownership."""
        meta = obj["metadata"]
        path = resource_path(
            obj["apiVersion"], PLURALS[obj["kind"]], meta["namespace"], meta["name"]
        )
        return (
            await self._call(
                "PATCH",
                path,
                body=dict(obj),
                content_type="application/apply-patch+yaml",
                params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            )
            or {}
        )

    async def create(self, obj: Mapping[str, Any]) -> bool:
        """Create `obj`; False when it already exists (409)."""
        meta = obj["metadata"]
        path = resource_path(obj["apiVersion"], PLURALS[obj["kind"]], meta["namespace"])
        created = await self._call(
            "POST",
            path,
            missing_ok=409,
            body=dict(obj),
            content_type="application/json",
            params=[("fieldManager", FIELD_MANAGER)],
        )
        return created is not None

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        path = resource_path(api_version, PLURALS[kind], namespace, name)
        return await self._call("GET", path, missing_ok=404)

    async def list(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str
    ) -> list[dict[str, Any]]:
        path = resource_path(api_version, PLURALS[kind], namespace)
        found = await self._call("GET", path, params=[("labelSelector", label_selector)]) or {}
        items: list[dict[str, Any]] = found.get("items") or []
        return items

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete an object; False when it was already gone."""
        path = resource_path(api_version, PLURALS[kind], namespace, name)
        return await self._call("DELETE", path, missing_ok=404) is not None

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource."""
        path = resource_path(api_version, PLURALS[kind], namespace, name) + "/status"
        return (
            await self._call(
                "PATCH",
                path,
                body={"status": dict(status)},
                content_type="application/merge-patch+json",
            )
            or {}
        )

    async def served_plurals(self, api_version: str) -> set[str]:
        """Resource plurals the API serves under `group/version` (empty when it serves none)."""
        found = await self._call("GET", f"/apis/{api_version}", missing_ok=404)
        resources = (found or {}).get("resources") or []
        return {str(item.get("name")) for item in resources if "/" not in str(item.get("name"))}

    async def list_names(self, api_version: str, plural: str, namespace: str | None) -> set[str]:
        """Names of the objects of a resource, cluster-wide when `namespace` is None."""
        base = f"/apis/{api_version}"
        path = (
            f"{base}/{plural}" if namespace is None else f"{base}/namespaces/{namespace}/{plural}"
        )
        items = (await self._call("GET", path) or {}).get("items") or []
        return {str((item.get("metadata") or {}).get("name")) for item in items}
