"""The per-RecModel tuning loop: observe, decide, actuate, record, at `spec.tuning.intervalSeconds`.

A kopf daemon (not a timer) runs it, because the interval is per object and may change with the
spec. Each step re-reads the RecModel, so it always starts from the status the last step (or a
restarted operator's predecessor) wrote: that is how a restart resumes the search. Pausing with
the `recsched.io/tuning-paused: "true"` annotation, or `mode: off`, keeps refreshing pool readiness
but neither observes nor changes the config.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping
from typing import Any

from recsched_operator.errors import InvalidSpecError, KubeApiError
from recsched_operator.recmodel import conditions as cond
from recsched_operator.recmodel.api import API_VERSION, PAUSE_ANNOTATION, RecModelSpec, parse_spec
from recsched_operator.recmodel.children import ConfigDocument
from recsched_operator.recmodel.naming import Owner
from recsched_operator.recmodel.status import applied_status, reported_applied
from recsched_operator.reconcile.controller import (
    EventSink,
    OperatorContext,
    actuate,
    pool_readiness_status,
    read_config,
    read_deployments,
    report_actuation,
)
from recsched_operator.tuner import bridge as tuner_bridge
from recsched_operator.tuner.outcome import TuningOutcome, decision_status, record_metrics

logger = logging.getLogger(__name__)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def is_paused(annotations: Mapping[str, str]) -> bool:
    return annotations.get(PAUSE_ANNOTATION, "").strip().lower() == "true"


async def run(ctx: OperatorContext, owner: Owner, *, stopped: Any, events: EventSink) -> None:
    """Step until the daemon is stopped; errors are reported and retried, never fatal."""
    # A daemon kopf spawns while shutting down can outlive the cleanup that closes the client.
    while not stopped and not ctx.kube.closed:
        try:
            wait_s = await step(ctx, owner, now=_now(), events=events)
        except (KubeApiError, OSError) as exc:
            if stopped or ctx.kube.closed:
                return
            ctx.metrics.errors.labels(owner.namespace, owner.name, "tuning").inc()
            events("Warning", "TuningError", f"tuning step failed: {exc}")
            logger.warning("tuning step of %s/%s failed: %s", owner.namespace, owner.name, exc)
            wait_s = ctx.settings.tuning_error_backoff_s
        if wait_s is None or stopped:
            return
        await stopped.wait(wait_s)


async def step(
    ctx: OperatorContext, owner: Owner, *, now: datetime.datetime, events: EventSink
) -> float | None:
    """One tuning step; returns seconds until the next, or None when the RecModel is gone."""
    obj = await ctx.kube.get(API_VERSION, "RecModel", owner.namespace, owner.name)
    if obj is None or obj.get("metadata", {}).get("deletionTimestamp"):
        return None
    try:
        spec = parse_spec(obj.get("spec") or {})
    except InvalidSpecError:
        return ctx.settings.tuning_error_backoff_s  # reconcile reports it; nothing to tune
    status: Mapping[str, Any] = obj.get("status") or {}
    generation = int(obj["metadata"].get("generation", 0))
    deployments = await read_deployments(ctx, owner)
    new_status = pool_readiness_status(spec, deployments, status, generation, now)
    pools_ready = new_status["phase"] != "Deploying"
    annotations = obj["metadata"].get("annotations") or {}
    async with ctx.config_lock(owner):
        current = await read_config(ctx, owner)
        if current is None:  # reconcile has not written the config yet: nothing to tune
            await ctx.kube.patch_status(
                API_VERSION, "RecModel", owner.namespace, owner.name, new_status
            )
            return float(spec.tuning.interval_s)
        new_status["applied"] = reported_applied(current, status.get("applied"))
        tuning = not is_paused(annotations) and spec.tuning.mode != "off"
        ctx.metrics.tuning_held.labels(owner.namespace, owner.name).set(0 if tuning else 1)
        if tuning:
            new_status.update(
                await _tune(
                    ctx,
                    owner,
                    spec,
                    status,
                    current,
                    new_status["conditions"],
                    generation,
                    now,
                    events,
                )
            )
    if not tuning:
        held = "Paused" if is_paused(annotations) else "Off"
        new_status["conditions"] = cond.set_condition(
            new_status["conditions"],
            type_=cond.TUNED,
            status="False",
            reason=held,
            message=f"tuning is {held.lower()}; config held",
            now=now,
            observed_generation=generation,
        )
        new_status["phase"] = held if pools_ready else "Deploying"
    elif not pools_ready:
        new_status["phase"] = "Deploying"
    await ctx.kube.patch_status(API_VERSION, "RecModel", owner.namespace, owner.name, new_status)
    return float(spec.tuning.interval_s)


async def _tune(
    ctx: OperatorContext,
    owner: Owner,
    spec: RecModelSpec,
    status: Mapping[str, Any],
    current: ConfigDocument,
    conditions: list[dict[str, Any]],
    generation: int,
    now: datetime.datetime,
    events: EventSink,
) -> dict[str, Any]:
    """Observe and decide; in auto mode apply a change (the caller holds the config lock)."""
    prometheus_url = spec.prometheus_url or ctx.settings.prometheus_url
    outcome = await asyncio.to_thread(
        tuner_bridge.observe_and_decide,
        prometheus_url=prometheus_url,
        owner=owner,
        spec=spec,
        current=current,
        raw_state=status.get("tuningState"),
        now=now,
        timeout_s=ctx.settings.prometheus_timeout_s,
    )
    update = decision_status(
        outcome,
        status,
        conditions,
        spec=spec,
        now=now,
        generation=generation,
        history_limit=ctx.settings.history_limit,
    )
    applied: ConfigDocument = current
    if outcome.changed and spec.tuning.mode == "auto":
        applied = ConfigDocument(
            generation=current.generation + 1,
            batch_size=outcome.after_batch_items,
            offload_threshold=outcome.after_threshold_items,
            workers=current.workers,
        )
        actuation = await actuate(ctx, owner, applied)
        report_actuation(actuation, events)
        update["applied"] = applied_status(
            applied, now=now, acknowledged=actuation.acknowledged, total=len(actuation.results)
        )
    _post_decision_event(outcome, status, events)
    record_metrics(ctx.metrics, owner, spec, outcome, applied)
    return update


def _post_decision_event(
    outcome: TuningOutcome, status: Mapping[str, Any], events: EventSink
) -> None:
    """An Event per decision, except an identical repeat of the last one (a steady hold)."""
    last = status.get("lastDecision") or {}
    if outcome.metrics_error:
        events("Warning", "MetricsUnavailable", outcome.metrics_error)
    if not outcome.changed and (last.get("action"), last.get("reason")) == (
        outcome.action,
        outcome.reason,
    ):
        return
    events("Normal", f"Tuning{outcome.action.capitalize()}", outcome.message())
