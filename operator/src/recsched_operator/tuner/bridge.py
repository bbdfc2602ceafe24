"""The one place the operator meets the tuner's types: spec -> tuner inputs -> `TuningOutcome`.

The tuner's core (`policy` and the modules under it) is pure and cluster-agnostic; this adapter
builds its inputs from a RecModel spec and the stored state, decides on one observation, and
flattens the result. It reads nothing itself: `cycle.run_cycle` gets the observation from the
source its shell passes in and then calls `decide`.

In `recommend` mode nothing is applied, so the online search cannot measure a neighbour; the
recommendation comes from the simulator calibrated on the window just observed
(`simulation.forecast`), with its predicted latency and capacity, whenever the window is
trustworthy and the model has a shipped profile. Otherwise the policy's own advice stands, with
the reason there is no forecast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from recsched_operator.recmodel.api import NO_OFFLOAD_THRESHOLD, RecModelSpec
from recsched_operator.recmodel.config_document import ConfigDocument
from recsched_operator.tuner.decision import Decision
from recsched_operator.tuner.knobs import KnobConfig, TuningBounds
from recsched_operator.tuner.observation import Observation
from recsched_operator.tuner.outcome import TuningOutcome
from recsched_operator.tuner.policy import decide_next_config
from recsched_operator.tuner.reasons import describe_change
from recsched_operator.tuner.settings import SloTarget, TuningMode, TuningSettings
from recsched_operator.tuner.simulation.engine import ClusterShape
from recsched_operator.tuner.simulation.forecast import Advice, NoForecast, advise
from recsched_operator.tuner.simulation.profiles import ProfileError, load_profile
from recsched_operator.tuner.state import TuningState


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


def decide(
    *,
    spec: RecModelSpec,
    current: ConfigDocument,
    raw_state: Mapping[str, Any] | None,
    observation: Observation,
    now_s: float,
) -> TuningOutcome:
    """The tuner's decision on `observation` for the served `current` document."""
    bounds, slo, settings = tuner_inputs(spec)
    state = TuningState.from_dict(dict(raw_state)) if raw_state else TuningState()
    served = KnobConfig(current.batch_size, current.offload_threshold)
    mode = TuningMode(spec.tuning.mode)
    decision, new_state = decide_next_config(
        observation, served, state, bounds, slo, settings, mode, now_s
    )
    forecast: dict[str, Any] | None = None
    # Too few samples or a failed observation: the policy's hold already says so.
    if (
        mode is TuningMode.RECOMMEND
        and observation.error is None
        and observation.samples >= settings.min_samples
    ):
        advice = simulator_advice(spec, served, current.workers, observation, bounds, slo)
        if isinstance(advice, str):
            why = f"{decision.reason} (no simulator forecast: {advice})"
            decision = dataclasses.replace(decision, reason=why)
        else:
            decision = _recommendation(served, advice)
            forecast = advice.to_dict()
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
        forecast=forecast,
    )


def simulator_advice(
    spec: RecModelSpec,
    served: KnobConfig,
    workers: int,
    observation: Observation,
    bounds: TuningBounds,
    slo: SloTarget,
) -> Advice | str:
    """The calibrated simulator's advice for this RecModel, or why there is none."""
    if spec.pools.cpu.replicas < 1:
        return "no CPU pool pods"
    try:
        profile = load_profile(spec.model.name)
    except ProfileError as error:
        return str(error)
    cluster = ClusterShape(spec.pools.cpu.replicas, workers, spec.pools.gpu.replicas)
    try:
        return advise(profile, cluster, observation, served, bounds, slo)
    except NoForecast as error:
        return str(error)


def _recommendation(served: KnobConfig, advice: Advice) -> Decision:
    config = advice.config
    if config == served:
        reason = f"no change recommended: {advice.describe()}"
    else:
        reason = f"recommend {describe_change(served, config)}: {advice.describe()}"
    return Decision("recommend", reason, served, False, served, config)
