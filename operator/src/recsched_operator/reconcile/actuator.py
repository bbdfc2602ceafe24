"""The cluster's actuator: ConfigMap + push to every ready pod + RecModel status + Events + metrics.

Two callers change a RecModel's config document and both go through `push_document` here:
reconcile, when the spec moves the config (`controller.reconcile`), and the tuning cycle
(`tuner.cycle.run_cycle`), through `ClusterActuator`. The ConfigMap is written first, because it
is the document of record (what a restarted or missed pod reads); then the document is pushed to
every ready pod found by label, and each pod's served generation is checked.

`ClusterActuator.record` is where a cycle lands in the cluster: the status patch (decision,
observation, history, conditions and the tuning state, from the pure `decision_status`), one
Event per decision that is not a steady repeat, and the operator's Prometheus series. Local mode's
counterpart is `local.actuator.LocalActuator`.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recsched_operator.recmodel.api import API_VERSION, RecModelSpec
from recsched_operator.recmodel.children import render_secret
from recsched_operator.recmodel.config_document import ConfigDocument, render_configmap
from recsched_operator.recmodel.naming import TOKEN_KEY, Owner, pool_pods_selector, secret_name
from recsched_operator.recmodel.status import applied_status
from recsched_operator.reconcile.config_push import PushResult, push_config, ready_pod_targets
from recsched_operator.reconcile.context import EventSink, OperatorContext
from recsched_operator.reconcile.decision_status import decision_status
from recsched_operator.tuner.cycle import Applied, CycleRecord
from recsched_operator.tuner.outcome import TuningOutcome


@dataclass(frozen=True)
class Actuation:
    """Outcome of pushing one config document."""

    config: ConfigDocument
    results: tuple[PushResult, ...]

    @property
    def acknowledged(self) -> int:
        return sum(1 for result in self.results if result.acknowledged)

    @property
    def failures(self) -> tuple[PushResult, ...]:
        return tuple(result for result in self.results if not result.acknowledged)


async def ensure_token(ctx: OperatorContext, owner: Owner) -> str:
    """Return the admin token, creating its Secret once (never re-generated, never logged)."""
    for _attempt in range(2):
        existing = await ctx.kube.get("v1", "Secret", owner.namespace, secret_name(owner.name))
        if existing is not None:
            data = existing.get("data") or {}
            if TOKEN_KEY in data:
                return base64.b64decode(data[TOKEN_KEY]).decode()
        token = secrets.token_urlsafe(32)
        if await ctx.kube.create(render_secret(owner, token)):
            return token
    raise RuntimeError(f"Secret {secret_name(owner.name)} exists but has no {TOKEN_KEY!r} key")


async def push_document(
    ctx: OperatorContext, owner: Owner, config: ConfigDocument, events: EventSink
) -> Actuation:
    """ConfigMap update, then push to every ready pod found by label, then check each one.

    Raises `KubeApiError` when the ConfigMap cannot be written (nothing changed then); pods that
    miss the push are counted in `recsched_tuner_push_failures_total` and named in an Event."""
    await ctx.kube.apply(render_configmap(owner, config))
    token = await ensure_token(ctx, owner)
    pods = await ctx.kube.list(
        "v1", "Pod", owner.namespace, label_selector=pool_pods_selector(owner.name)
    )
    targets = ready_pod_targets(pods)
    results = await push_config(
        targets, config.to_json_dict(), token, timeout_s=ctx.settings.push_timeout_s
    )
    actuation = Actuation(config=config, results=tuple(results))
    if actuation.failures:
        ctx.metrics.push_failures.labels(owner.namespace, owner.name).inc(len(actuation.failures))
    _report(actuation, events)
    return actuation


def _report(actuation: Actuation, events: EventSink) -> None:
    generation = actuation.config.generation
    if actuation.failures:
        failed = ", ".join(f"{r.pod} ({r.error})" for r in actuation.failures)
        events("Warning", "ConfigPushFailed", f"generation {generation} not served by: {failed}")
    elif actuation.results:
        events(
            "Normal",
            "ConfigApplied",
            f"generation {generation} served by {actuation.acknowledged} pods",
        )


class ClusterActuator:
    """One tuning cycle's actuator for one RecModel (built per step by the tuning daemon).

    `previous_status` is the status the step read (history, last decision); `base_status` is what
    the step itself computed (pool readiness, conditions, phase, the reported `applied`), onto
    which `record` lays the cycle's fields before the one status patch of the step.
    """

    def __init__(
        self,
        ctx: OperatorContext,
        owner: Owner,
        spec: RecModelSpec,
        events: EventSink,
        *,
        previous_status: Mapping[str, Any],
        base_status: Mapping[str, Any],
        generation: int,
    ) -> None:
        self._ctx = ctx
        self._owner = owner
        self._spec = spec
        self._events = events
        self._previous = previous_status
        self._base = base_status
        self._generation = generation

    async def apply(self, config: ConfigDocument) -> Applied:
        actuation = await push_document(self._ctx, self._owner, config, self._events)
        return Applied(config, actuation.acknowledged, len(actuation.results))

    async def record(self, cycle: CycleRecord) -> None:
        status = dict(self._base)
        status.update(
            decision_status(
                cycle.outcome,
                self._previous,
                self._base["conditions"],
                spec=self._spec,
                now=cycle.at,
                generation=self._generation,
                history_limit=self._ctx.settings.history_limit,
            )
        )
        if cycle.applied is not None:
            status["applied"] = applied_status(
                cycle.applied.config,
                now=cycle.at,
                acknowledged=cycle.applied.acknowledged,
                total=cycle.applied.total,
            )
        if self._base["phase"] == "Deploying":  # pools not ready yet: that phase wins
            status["phase"] = "Deploying"
        _post_decision_event(cycle.outcome, self._previous, self._events)
        _record_metrics(self._ctx, self._owner, self._spec, cycle.outcome, cycle.served)
        owner = self._owner
        await self._ctx.kube.patch_status(
            API_VERSION, "RecModel", owner.namespace, owner.name, status
        )


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


def _record_metrics(
    ctx: OperatorContext,
    owner: Owner,
    spec: RecModelSpec,
    outcome: TuningOutcome,
    served: ConfigDocument,
) -> None:
    metrics, labels = ctx.metrics, (owner.namespace, owner.name)
    metrics.decisions.labels(*labels, outcome.action).inc()
    metrics.record_slo(*labels, spec.slo.percentile, spec.slo.target_ms / 1000.0)
    for quantile, value in (("0.95", outcome.p95_ms), ("0.99", outcome.p99_ms)):
        if value is not None:
            metrics.observed_latency.labels(*labels, quantile).set(value / 1000.0)
    if outcome.qps is not None:
        metrics.observed_qps.labels(*labels).set(outcome.qps)
    metrics.batch_size.labels(*labels).set(served.batch_size)
    metrics.offload_threshold.labels(*labels).set(served.offload_threshold)
    metrics.generation.labels(*labels).set(served.generation)
