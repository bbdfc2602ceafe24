"""Operator test harness: an operator running kopf against the emulator, and polling helpers.

The operator runs in the test's own event loop (`kopf.operator` as a task), with settings built
here rather than from the environment, and kopf's standalone mode unless a test asks for peering.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import kopf

import recsched_operator.handlers  # noqa: F401 - registers the handlers on kopf's default registry
from recsched_operator.settings import OperatorSettings
from support.kube_emulator import KubeEmulator

RECMODELS = "recsched.io/v1alpha1/recmodels"
SENT_PERMISSIONS: set[tuple[str, str, str]] = set()
"""(apiGroup, resource, verb) of every request any emulator received in this session."""

BASE_RECMODEL: dict[str, Any] = {
    "apiVersion": "recsched.io/v1alpha1",
    "kind": "RecModel",
    "metadata": {"name": "rm1", "namespace": "ns1"},
    "spec": {
        "model": {"name": "rmc1", "scale": 0.01, "image": "recsched-pod:test"},
        "slo": {"percentile": 95, "targetMs": 50, "windowSeconds": 10, "minSamples": 10},
        "pools": {"cpu": {"replicas": 2, "workers": 2}},
        "tuning": {
            "intervalSeconds": 1,
            "cooldownSeconds": 0,
            "batchSize": {"min": 1, "max": 256, "initial": 32},
        },
    },
}


def recmodel(name: str = "rm1", **spec_changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(BASE_RECMODEL)
    body["metadata"]["name"] = name
    body["spec"].update(spec_changes)
    return body


def operator_settings(kube: KubeEmulator, **overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "kube_api_url": str(kube.url).rstrip("/"),
        "metrics_host": "127.0.0.1",
        "metrics_port": 0,
        "prometheus_url": "http://127.0.0.1:9",  # nothing listens: metrics unavailable
        "prometheus_timeout_s": 1.0,
        "tuning_error_backoff_s": 0.5,
        "log_format": "plain",
        **overrides,
    }
    return OperatorSettings(**values)


@contextlib.asynccontextmanager
async def running_operator(
    settings: OperatorSettings, *, standalone: bool = True
) -> AsyncIterator[kopf.Memo]:
    """Run the operator in its own thread and event loop until the block exits; yields its memo.

    A separate loop because kopf, on exit, waits for and then cancels every task created in its
    loop after it started, which in a shared loop would include the emulator's server tasks.
    """
    stop, ready = threading.Event(), threading.Event()
    memo = kopf.Memo(operator_settings=settings)
    errors: list[BaseException] = []

    def operate() -> None:
        try:
            asyncio.run(
                kopf.operator(
                    standalone=standalone,
                    clusterwide=True,
                    stop_flag=stop,
                    ready_flag=ready,
                    memo=memo,
                    settings=kopf.OperatorSettings(),
                    peering_name=None if standalone else settings.peering_name,
                )
            )
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    thread = threading.Thread(target=operate, name="operator", daemon=True)
    thread.start()
    assert await asyncio.to_thread(ready.wait, 15), f"operator did not start: {errors}"
    try:
        yield memo
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 30)
        assert not thread.is_alive(), "operator did not stop within 30 s"
        assert not errors, "operator failed:\n" + "".join(
            line for error in errors for line in traceback.format_exception(error)
        )


async def eventually(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]], *, timeout_s: float = 15.0
) -> Any:
    """Poll `check` until it returns a truthy value without raising; re-raise at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            error: BaseException = AssertionError(f"{check} stayed falsy")
        except (AssertionError, KeyError, LookupError, TypeError) as exc:
            error = exc
        if time.monotonic() > deadline:
            raise error
        await asyncio.sleep(0.05)


async def create(kube: KubeEmulator, body: dict[str, Any]) -> None:
    ns = body["metadata"]["namespace"]
    async with kube.post(f"/apis/recsched.io/v1alpha1/namespaces/{ns}/recmodels", json=body) as r:
        assert r.status == 201, await r.text()


async def merge_patch(kube: KubeEmulator, path: str, patch: dict[str, Any]) -> None:
    headers = {"Content-Type": "application/merge-patch+json"}
    async with kube.patch(path, json=patch, headers=headers) as response:
        assert response.status == 200, await response.text()


def obj(kube: KubeEmulator, resource: str, namespace: str, name: str) -> dict[str, Any]:
    """The current raw object (KeyError while it does not exist)."""
    stored = kube.objects[resource, namespace, name]
    if stored.deleted:
        raise KeyError(name)
    return dict(stored.raw)
