"""The RecModel status fields one tuning cycle writes: observed latency, decision, history,
conditions, phase and the stored tuning state.

Pure (no I/O): `reconcile.actuator.ClusterActuator.record` merges this into the status it patches,
and tests check it without a cluster. It reads the cycle's `TuningOutcome`, never the tuner's
internal types.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from recsched_operator.recmodel import conditions as cond
from recsched_operator.recmodel.api import RecModelSpec
from recsched_operator.tuner.outcome import TuningOutcome


def _phase(outcome: TuningOutcome, spec: RecModelSpec) -> str:
    if spec.tuning.mode == "recommend":
        return "Recommending"
    if outcome.metrics_error or not outcome.metrics_sufficient:
        return "Holding"
    return "Converged" if outcome.converged else "Tuning"


def _observed_ms(outcome: TuningOutcome, spec: RecModelSpec) -> float | None:
    return outcome.p99_ms if spec.slo.percentile == 99 else outcome.p95_ms


def _conditions(
    outcome: TuningOutcome,
    existing: Sequence[Mapping[str, Any]],
    spec: RecModelSpec,
    now: datetime.datetime,
    generation: int,
) -> list[dict[str, Any]]:
    def put(
        conds: Sequence[Mapping[str, Any]], type_: str, ok: bool | None, reason: str, message: str
    ) -> list[dict[str, Any]]:
        return cond.set_verdict(
            conds, type_, ok, reason, message, now=now, observed_generation=generation
        )

    if outcome.metrics_error:
        metrics = (False, "PrometheusError", outcome.metrics_error)
    elif not outcome.metrics_sufficient:
        metrics = (
            False,
            "MetricsMissing",
            f"{outcome.samples} samples < {spec.slo.min_samples} in the window",
        )
    else:
        metrics = (True, "MetricsFound", f"{outcome.samples} samples in the window")
    conds = put(existing, cond.METRICS_AVAILABLE, *metrics)
    observed_ms = _observed_ms(outcome, spec)
    target = f"p{spec.slo.percentile} target {spec.slo.target_ms:g} ms"
    if observed_ms is None or not outcome.metrics_sufficient:
        conds = put(conds, cond.SLO_MET, None, "NoData", f"no latency observed; {target}")
    else:
        met = observed_ms <= spec.slo.target_ms
        conds = put(
            conds,
            cond.SLO_MET,
            met,
            "WithinTarget" if met else "TargetExceeded",
            f"p{spec.slo.percentile} {observed_ms:.1f} ms, {target}",
        )
    return put(
        conds,
        cond.TUNED,
        outcome.converged,
        "Converged" if outcome.converged else "Searching",
        outcome.message(),
    )


def decision_status(
    outcome: TuningOutcome,
    status: Mapping[str, Any],
    conditions: Sequence[Mapping[str, Any]],
    *,
    spec: RecModelSpec,
    now: datetime.datetime,
    generation: int,
    history_limit: int,
) -> dict[str, Any]:
    """The status fields one tuning step writes (the caller adds `applied` after actuation)."""
    at = cond.format_time(now)
    update: dict[str, Any] = {
        "conditions": _conditions(outcome, conditions, spec, now, generation),
        "phase": _phase(outcome, spec),
        "tuningState": outcome.state,
        "lastDecision": {
            "action": outcome.action,
            "reason": outcome.reason,
            "decidedAt": at,
            "before": {
                "batchSize": outcome.before_batch_items,
                "offloadThreshold": outcome.before_threshold_items,
            },
            "after": {
                "batchSize": outcome.after_batch_items,
                "offloadThreshold": outcome.after_threshold_items,
            },
        },
        "recommended": {
            "batchSize": outcome.recommended_batch_items,
            "offloadThreshold": outcome.recommended_threshold_items,
            "reason": outcome.reason,
            # None removes a previous step's forecast (the status is merge-patched).
            "forecast": outcome.forecast,
        },
    }
    observed: dict[str, Any] = {"samples": outcome.samples, "observedAt": at}
    for key, value in (("p95Ms", outcome.p95_ms), ("p99Ms", outcome.p99_ms), ("qps", outcome.qps)):
        if value is not None:
            observed[key] = round(value, 3)
    update["observed"] = observed
    if outcome.changed:
        entry: dict[str, Any] = {
            "decidedAt": at,
            "action": outcome.action,
            "reason": outcome.reason,
            "batchSize": outcome.after_batch_items,
            "offloadThreshold": outcome.after_threshold_items,
        }
        if outcome.p95_ms is not None:
            entry["p95Ms"] = round(outcome.p95_ms, 3)
        if outcome.qps is not None:
            entry["qps"] = round(outcome.qps, 3)
        history = [*(status.get("history") or []), entry]
        update["history"] = history[-history_limit:]
    return update
