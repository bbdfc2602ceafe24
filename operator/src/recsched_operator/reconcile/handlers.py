"""Every kopf registration of the operator: each handler is a guard and one awaited call.

Importing this module registers the handlers. Settings are never read at import: the caller puts
an `OperatorSettings` into kopf's memo as `operator_settings` (the CLI builds it from the
environment, tests build their own), and the start-up handler turns it into the shared context.
Ids are explicit because kopf stores handler progress under them.
"""

from __future__ import annotations

import datetime
from typing import Any

import kopf

from recsched_operator.errors import InvalidSpecError, KubeApiError
from recsched_operator.recmodel.api import GROUP, PLURAL, VERSION
from recsched_operator.recmodel.naming import Owner
from recsched_operator.recmodel.status import invalid_spec_status
from recsched_operator.reconcile import controller, lifecycle
from recsched_operator.reconcile import tuning_daemon as tuning
from recsched_operator.reconcile.context import EventSink, OperatorContext


def _events(body: kopf.Body) -> EventSink:
    def post(type_: str, reason: str, message: str) -> None:
        kopf.event(body, type=type_, reason=reason, message=message)

    return post


def _owner(body: kopf.Body) -> Owner:
    return Owner(
        name=str(body.meta.name), namespace=str(body.meta.namespace), uid=str(body.meta.uid)
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@kopf.on.startup(id="startup")
async def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    memo.context, memo.health_server = await lifecycle.start(
        memo.operator_settings, settings, memo.get("watched_namespaces", ())
    )


@kopf.on.login(id="login")
def on_login(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    return lifecycle.resolve_connection(memo.operator_settings, settings)


@kopf.on.cleanup(id="cleanup")
async def on_cleanup(memo: kopf.Memo, **_: Any) -> None:
    if "context" in memo:
        await lifecycle.stop(memo.context, memo.health_server)


@kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile-on-resume")
@kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile-on-create")
@kopf.on.update(GROUP, VERSION, PLURAL, id="reconcile-on-update")
async def on_reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    context: OperatorContext = memo.context
    owner, generation, now = _owner(body), int(body.meta.get("generation", 0)), _now()
    try:
        status = await controller.reconcile(
            context,
            owner,
            generation=generation,
            raw_spec=body.spec,
            raw_status=body.status,
            now=now,
            events=_events(body),
        )
    except InvalidSpecError as exc:
        context.metrics.errors.labels(owner.namespace, owner.name, "spec").inc()
        patch.status.update(
            invalid_spec_status(
                body.status.get("conditions") or [], exc, generation=generation, now=now
            )
        )
        raise kopf.PermanentError(f"InvalidSpec: {exc}") from exc
    except KubeApiError as exc:
        context.metrics.errors.labels(owner.namespace, owner.name, "reconcile").inc()
        raise kopf.TemporaryError(f"API call failed: {exc}", delay=10) from exc
    patch.status.update(status)


@kopf.on.delete(GROUP, VERSION, PLURAL, id="forget")
async def on_delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # Children go with the owner references; only the operator's own series need forgetting.
    memo.context.metrics.forget(str(body.meta.namespace), str(body.meta.name))


@kopf.daemon(GROUP, VERSION, PLURAL, id="tuning-loop", cancellation_timeout=10.0)
async def tuning_daemon(
    stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    await tuning.run(memo.context, _owner(body), stopped=stopped, events=_events(body))
