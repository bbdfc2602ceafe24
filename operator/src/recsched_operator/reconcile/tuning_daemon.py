"""The cluster's shell around the tuning cycle: one step per RecModel every `intervalSeconds`.

A kopf daemon (not a timer) runs it, because the interval is per object and may change with the
spec. Each step re-reads the RecModel, so it always starts from the status the last step (or a
restarted operator's predecessor) wrote: that is how a restart resumes the search. A step
refreshes pool readiness, reads the served config document from the ConfigMap, and then runs
`tuner.cycle.run_cycle` with the cluster's two parts: a `PrometheusSource` and a
`ClusterActuator` (ConfigMap + push + status + Events + metrics). Local mode's `LocalTuner` runs
the same cycle with its own actuator. Pausing with the `recsched.io/tuning-paused: "true"`
annotation, or `mode: off`, keeps refreshing pool readiness but neither observes nor changes the
config.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from recsched_operator.errors import InvalidSpecError, KubeApiError
from recsched_operator.recmodel import conditions as cond
from recsched_operator.recmodel.api import API_VERSION, PAUSE_ANNOTATION, RecModelSpec, parse_spec
from recsched_operator.recmodel.naming import Owner
from recsched_operator.recmodel.status import reported_applied
from recsched_operator.reconcile.actuator import ClusterActuator
from recsched_operator.reconcile.context import EventSink, OperatorContext
from recsched_operator.reconcile.controller import (
    pool_readiness_status,
    read_config,
    read_deployments,
)
from recsched_operator.tuner.cycle import ObservationSource, run_cycle
from recsched_operator.tuner.prometheus_source import PrometheusSource

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
            actuator = ClusterActuator(
                ctx,
                owner,
                spec,
                events,
                previous_status=status,
                base_status=new_status,
                generation=generation,
            )
            await run_cycle(
                observation_source(ctx, spec),
                actuator,
                owner=owner,
                spec=spec,
                served=current,
                raw_state=status.get("tuningState"),
                now=now,
            )
            return float(spec.tuning.interval_s)  # the actuator wrote the status
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
    await ctx.kube.patch_status(API_VERSION, "RecModel", owner.namespace, owner.name, new_status)
    return float(spec.tuning.interval_s)


def observation_source(ctx: OperatorContext, spec: RecModelSpec) -> ObservationSource:
    """The RecModel's Prometheus (`spec.prometheusUrl`, else the operator's setting)."""
    url = spec.prometheus_url or ctx.settings.prometheus_url
    return PrometheusSource(url, timeout_s=ctx.settings.prometheus_timeout_s)
