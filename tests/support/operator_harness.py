"""Operator test harness: an operator running kopf against the emulator, and polling helpers.

The operator runs in the test's own event loop (`kopf.operator` as a task), with settings built
here rather than from the environment, and kopf's standalone mode unless a test asks for peering.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import traceback
from collections.abc import AsyncIterator, Mapping
from typing import Any

import kopf

import recsched_operator.reconcile.handlers  # noqa: F401 - registers the handlers on kopf's default registry
from recsched_operator.settings import OperatorSettings
from support.kube_emulator import KubeEmulator
from support.waiting import eventually as eventually  # re-exported: tests import it from here

RECMODELS = "recsched.io/v1alpha1/recmodels"
SENT_PERMISSIONS: set[tuple[str, str, str]] = set()
"""(apiGroup, resource, verb) of every request any emulator received in this session."""
NAMESPACED_SENT_PERMISSIONS: set[tuple[str, str, str]] = set()
"""The same, from emulators whose operator ran namespaced (`KubeEmulator.namespaced_operator`)."""

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


class _OperatorThread:
    """kopf.operator in its own thread and event loop, stoppable from any thread.

    The stop flag is an asyncio.Event made inside that loop: kopf waits for a `threading.Event`
    or a concurrent future in an executor thread, and `asyncio.run` then waits for that thread
    forever when the operator ends on its own (a failed start-up). Kopf leaves its waiter for
    the flag running when it ends on its own, and waits 5 s for such tasks; an operator expected
    to fail is therefore run without a flag (`stoppable=False`) and cancelled if it does not.
    """

    def __init__(
        self, settings: OperatorSettings, options: Mapping[str, Any], *, stoppable: bool = True
    ) -> None:
        self.ready = threading.Event()
        self.memo = kopf.Memo(
            operator_settings=settings, watched_namespaces=tuple(options.get("namespaces", ()))
        )
        self.errors: list[BaseException] = []
        self._options = dict(options)
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stoppable = stoppable
        self._task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._operate, name="operator", daemon=True)
        self.thread.start()
        self._started.wait(15)

    def _operate(self) -> None:
        async def operate() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._task = asyncio.current_task()
            self._started.set()
            await kopf.operator(
                **self._options,
                stop_flag=self._stop if self._stoppable else None,
                ready_flag=self.ready,
                memo=self.memo,
                settings=kopf.OperatorSettings(),
            )

        try:
            asyncio.run(operate())
        except BaseException as exc:  # reported to the test
            self.errors.append(exc)

    def stop(self) -> None:
        if self._loop is None or self._stop is None or self._loop.is_closed():
            return
        stop = self._stop.set if self._stoppable or self._task is None else self._task.cancel
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(stop)


def _default_options(settings: OperatorSettings, standalone: bool) -> dict[str, Any]:
    return {
        "standalone": standalone,
        "clusterwide": True,
        "peering_name": None if standalone else settings.peering_name,
    }


@contextlib.asynccontextmanager
async def running_operator(
    settings: OperatorSettings,
    *,
    standalone: bool = True,
    kopf_options: Mapping[str, Any] | None = None,
) -> AsyncIterator[kopf.Memo]:
    """Run the operator in its own thread and event loop until the block exits; yields its memo.

    A separate loop because kopf, on exit, waits for and then cancels every task created in its
    loop after it started, which in a shared loop would include the emulator's server tasks.
    `kopf_options` (scope and peering arguments, e.g. from `cli.kopf_run_options`) replace the
    ones `standalone` implies.
    """
    options = kopf_options if kopf_options is not None else _default_options(settings, standalone)
    operator = _OperatorThread(settings, options)
    started = await asyncio.to_thread(operator.ready.wait, 15)
    assert started, f"operator did not start: {operator.errors}"
    try:
        yield operator.memo
    finally:
        operator.stop()
        await asyncio.to_thread(operator.thread.join, 30)
        assert not operator.thread.is_alive(), "operator did not stop within 30 s"
        assert not operator.errors, "operator failed:\n" + "".join(
            line for error in operator.errors for line in traceback.format_exception(error)
        )


async def failed_start(
    settings: OperatorSettings, kopf_options: Mapping[str, Any], *, timeout_s: float = 30.0
) -> BaseException:
    """Run the operator expecting its start-up to fail; the exception kopf ended with."""
    operator = _OperatorThread(settings, kopf_options, stoppable=False)
    await asyncio.to_thread(operator.thread.join, timeout_s)
    if operator.thread.is_alive():
        operator.stop()
        await asyncio.to_thread(operator.thread.join, 30)
        raise AssertionError(f"the operator kept running for {timeout_s} s instead of failing")
    assert not operator.ready.is_set(), "the operator became ready"
    assert len(operator.errors) == 1, operator.errors
    return operator.errors[0]


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
