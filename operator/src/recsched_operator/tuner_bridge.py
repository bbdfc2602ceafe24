"""The one place the operator meets the tuner's types: spec -> tuner inputs -> `TuningOutcome`.

The tuner (`tuning/`, `observations`) is pure and cluster-agnostic; this adapter builds its inputs
from a RecModel spec and the stored state, runs one observe-and-decide round, and flattens the
result. It is synchronous (prometheus-api-client uses requests), so the loop calls it in a thread.
"""

from __future__ import annotations

import datetime
import importlib
from collections.abc import Mapping
from typing import Any

from recsched_operator.api import NO_OFFLOAD_THRESHOLD, RecModelSpec
from recsched_operator.naming import Owner
from recsched_operator.objects import ConfigDocument
from recsched_operator.tuning.knobs import KnobConfig, TuningBounds
from recsched_operator.tuning.observation import Observation
from recsched_operator.tuning.policy import decide_next_config
from recsched_operator.tuning.settings import SloTarget, TuningMode, TuningSettings
from recsched_operator.tuning.state import TuningState
from recsched_operator.tuning_status import TuningOutcome


def tuner_inputs(spec: RecModelSpec) -> tuple[TuningBounds, SloTarget, TuningSettings]:
    """Bounds (threshold pinned to "off" without a GPU pool), SLO and tuner settings."""
    threshold = spec.tuning.offload_threshold
    pinned = spec.pools.gpu.replicas == 0
    bounds = TuningBounds(
        batch_min=spec.tuning.batch_size.min_items,
        batch_max=spec.tuning.batch_size.max_items,
        threshold_min=NO_OFFLOAD_THRESHOLD if pinned else threshold.min_items,
        threshold_max=NO_OFFLOAD_THRESHOLD if pinned else threshold.max_items,
    )
    slo = SloTarget(
        percentile=spec.slo.percentile, target_ms=spec.slo.target_ms, window_s=spec.slo.window_s
    )
    settings = TuningSettings(cooldown_s=spec.tuning.cooldown_s, min_samples=spec.slo.min_samples)
    return bounds, slo, settings


def _observe(
    prometheus_url: str, owner: Owner, slo: SloTarget, now_s: float, timeout_s: float
) -> Observation:
    try:
        observations: Any = importlib.import_module("recsched_operator.observations")
    except ModuleNotFoundError:
        return Observation.failed(now_s, "recsched_operator.observations is not installed")
    source = observations.PrometheusSource(prometheus_url, timeout_s=timeout_s)
    observation: Observation = source.observe(owner.name, owner.namespace, slo, now_s)
    return observation


def observe_and_decide(
    *,
    prometheus_url: str,
    owner: Owner,
    spec: RecModelSpec,
    current: ConfigDocument,
    raw_state: Mapping[str, Any] | None,
    now: datetime.datetime,
    timeout_s: float,
) -> TuningOutcome:
    bounds, slo, settings = tuner_inputs(spec)
    now_s = now.timestamp()
    state = TuningState.from_dict(dict(raw_state)) if raw_state else TuningState()
    observation = _observe(prometheus_url, owner, slo, now_s, timeout_s)
    served = KnobConfig(current.batch_size, current.offload_threshold)
    decision, new_state = decide_next_config(
        observation, served, state, bounds, slo, settings, TuningMode(spec.tuning.mode), now_s
    )
    return TuningOutcome(
        action=decision.action,
        reason=decision.reason,
        changed=decision.changed,
        before_batch_items=decision.before.batch_size,
        before_threshold_items=decision.before.offload_threshold,
        after_batch_items=decision.config.batch_size,
        after_threshold_items=decision.config.offload_threshold,
        recommended_batch_items=decision.after.batch_size,
        recommended_threshold_items=decision.after.offload_threshold,
        p95_ms=observation.p95_ms,
        p99_ms=observation.p99_ms,
        qps=observation.qps,
        samples=int(observation.samples),
        metrics_error=observation.error,
        metrics_sufficient=observation.error is None
        and observation.samples >= settings.min_samples,
        converged=new_state.phase == "converged",
        state=new_state.to_dict(),
    )
