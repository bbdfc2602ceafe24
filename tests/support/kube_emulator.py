"""kmock's KubernetesEmulator made realistic enough for kopf and for server-side apply.

What it adds (DESIGN.md section 6): `uid`/`resourceVersion`/`generation`/`creationTimestamp` on
create; a fresh `resourceVersion` on every change and `generation` bumps on non-metadata/status
changes; merge-patch, JSON-patch (a failed `test` op answers 422, as kopf expects) and
apply-patch (upsert; the applier owns every field it sends); the status subresource (status-only
patches, status kept on main-resource patches); Secret `stringData` folded into base64 `data`;
lists with `kind` and a real `resourceVersion`, filtered by equality label selectors; watch events
older than the requested `resourceVersion` dropped. Still absent: garbage collection, controllers
(tests create Pods and set Deployment status themselves), PUT, and admission/schema validation
(which is why the rendered objects are validated against the official schemas separately).
"""

from __future__ import annotations

import base64
import copy
import datetime
import itertools
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import rendering  # Request has no public alias in kmock 0.8
from kmock._internal.k8s import KubernetesObjectConflictError

_LIST_KINDS = {
    "configmaps": "ConfigMapList",
    "secrets": "SecretList",
    "services": "ServiceList",
    "deployments": "DeploymentList",
    "pods": "PodList",
    "events": "EventList",
    "recmodels": "RecModelList",
}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _spec_part(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """The emulator kopf and the operator run against in tests."""

    _versions: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    latest_version: int = attrs.field(default=0, init=False)
    namespaced_operator: bool = attrs.field(default=False, init=False)
    """Set by a test that runs the operator namespaced (`-n`): its requests are then checked
    against the chart's namespace-scope RBAC instead of the cluster-scope one."""

    def _next_version(self) -> str:
        self.latest_version = next(self._versions)
        return str(self.latest_version)

    @property
    def requests(self) -> list[rendering.Request]:
        """Every request received so far, oldest first."""
        return list(self._requests)

    def declare(
        self,
        resource: str,
        kind: str,
        *,
        subresources: tuple[str, ...] = (),
        namespaced: bool = True,
    ) -> None:
        """Make a resource discoverable (kopf waits for `v1/namespaces` even when cluster-wide)."""
        self.resources[resource] = kmock.ResourceInfo(
            kind=kind,
            namespaced=namespaced,
            subresources=set(subresources),
            verbs={"get", "list", "watch", "create", "patch", "delete"},
        )

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        mutating = (kmock.action.CREATE, kmock.action.UPDATE, kmock.action.DELETE)
        if request.resource is None or request.action not in mutating:
            return await super()._handle(request)
        async with self._lock:
            if request.action == kmock.action.CREATE:
                obj, event = self._create(request, request.data)
            elif request.action == kmock.action.UPDATE:
                obj, event = self._patch(request)
            else:
                obj, event = self._delete(request)
        if event is not None:
            await self._buses[request.resource].put({"type": event, "object": obj})
        return aiohttp.web.json_response(obj, status=201 if event == "ADDED" else 200)

    def _key(self, request: rendering.Request, name: str | None = None) -> Any:
        return (request.resource, request.namespace, name or request.name)

    def _create(self, request: rendering.Request, data: Any) -> tuple[dict[str, Any], str]:
        body: dict[str, Any] = copy.deepcopy(dict(data or {}))
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        meta.setdefault("namespace", request.namespace)
        key = self._key(request, meta["name"])
        if key in self._objects and not self._objects[key].deleted:
            raise KubernetesObjectConflictError()
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_version(),
            generation=1,
            creationTimestamp=now,
        )
        if body.get("kind") == "Secret" and "stringData" in body:
            data_b64 = {
                k: base64.b64encode(v.encode()).decode() for k, v in body.pop("stringData").items()
            }
            body["data"] = {**body.get("data", {}), **data_b64}
        if key in self._objects:
            self._objects[key].create(body)
        else:
            self._objects[key] = body
        return body, "ADDED"

    def _patch(self, request: rendering.Request) -> tuple[dict[str, Any], str | None]:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        key = self._key(request)
        if key not in self._objects or self._objects[key].deleted:
            if content_type == "application/apply-patch+yaml":
                return self._create(request, request.data)
            raise kmock.KubernetesObjectNotFoundError()
        old: dict[str, Any] = copy.deepcopy(self._objects[key].raw)
        new = self._patched(old, request.data, content_type)
        if request.subresource == "status":
            new = {**old, "status": new.get("status")}
        elif "status" in old or "status" in new:
            new["status"] = old.get("status") if "status" in old else new.get("status")
        if new.get("status") is None:
            new.pop("status", None)
        new_meta = new.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "resourceVersion", "generation", "namespace"):
            if field in old.get("metadata", {}):
                new_meta[field] = old["metadata"][field]
        if new == old:
            return old, None  # a no-op patch changes neither resourceVersion nor generation
        if _spec_part(new) != _spec_part(old):
            new_meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        new_meta["resourceVersion"] = self._next_version()
        if new_meta.get("deletionTimestamp") and not new_meta.get("finalizers"):
            self._objects[key].history.append(new)  # record the last state, then drop it
            self._objects[key].delete()
            return new, "DELETED"
        self._objects[key].history.append(new)
        return new, "MODIFIED"

    @staticmethod
    def _patched(old: dict[str, Any], data: Any, content_type: str) -> dict[str, Any]:
        if content_type == "application/json-patch+json":
            try:
                result: dict[str, Any] = jsonpatch.apply_patch(old, data)
            except (jsonpatch.JsonPatchTestFailed, jsonpatch.JsonPatchConflict) as exc:
                raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from exc
            return result
        if content_type == "application/apply-patch+yaml":
            applied = copy.deepcopy(dict(data))
            meta = merge_patch(
                old.get("metadata", {}),
                {
                    k: v
                    for k, v in applied.pop("metadata", {}).items()
                    if k in ("labels", "annotations", "ownerReferences")
                },
            )
            return {**{k: v for k, v in old.items() if k == "status"}, **applied, "metadata": meta}
        result = merge_patch(old, data)
        assert isinstance(result, dict)
        return result

    def _delete(self, request: rendering.Request) -> tuple[dict[str, Any], str | None]:
        key = self._key(request)
        if key not in self._objects or self._objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        obj: dict[str, Any] = copy.deepcopy(self._objects[key].raw)
        meta = obj.setdefault("metadata", {})
        if meta.get("deletionTimestamp"):
            return obj, None
        meta["resourceVersion"] = self._next_version()
        if meta.get("finalizers"):
            meta["deletionTimestamp"] = datetime.datetime.now(datetime.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            self._objects[key].history.append(obj)
            return obj, "MODIFIED"
        self._objects[key].delete()
        return obj, "DELETED"

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        listing = await super()._serve_list(request)
        assert isinstance(listing, dict) and request.resource is not None
        selector = request.params.get("labelSelector", "")
        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
        items = [
            item
            for item in listing["items"]
            if all(
                item.get("metadata", {}).get("labels", {}).get(k) == v for k, v in wanted.items()
            )
        ]
        return {
            "apiVersion": request.resource.version
            if not request.resource.group
            else f"{request.resource.group}/{request.resource.version}",
            "kind": _LIST_KINDS.get(str(request.resource.plural), "List"),
            "metadata": {"resourceVersion": str(self.latest_version)},
            "items": items,
        }

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        since = int(request.params.get("resourceVersion") or 0)
        async for event in super()._serve_watch(request):
            if isinstance(event, dict):
                version = event.get("object", {}).get("metadata", {}).get("resourceVersion")
                if version is not None and int(version) <= since:
                    continue
            yield event


def sent_permissions(requests: list[rendering.Request]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource[/subresource], verb) of every API request the emulator received,
    except those the tests sent themselves through kmock's own client."""
    verbs = {
        kmock.action.LIST: "list",
        kmock.action.WATCH: "watch",
        kmock.action.FETCH: "get",
        kmock.action.CREATE: "create",
        kmock.action.UPDATE: "patch",
        kmock.action.DELETE: "delete",
    }
    permissions: set[tuple[str, str, str]] = set()
    for request in requests:
        resource = request.resource
        if resource is None or not resource.plural or request.action not in verbs:
            continue
        if request.headers.get("User-Agent", "").startswith("kmock/"):
            continue
        plural = (
            f"{resource.plural}/{request.subresource}" if request.subresource else resource.plural
        )
        permissions.add((str(resource.group), str(plural), verbs[request.action]))
    return permissions
