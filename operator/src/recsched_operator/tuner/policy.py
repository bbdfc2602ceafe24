"""The tuner: (observation, served config, state, bounds, SLO, settings, mode, now) -> decision.

Pure and deterministic: no clock, no I/O, no randomness; the caller passes `now_s` and stores the
returned state. One call per measurement window. The flow:

1. Hold when there is nothing trustworthy to judge: mode off, an observation error or NaN, fewer
   queries than `min_samples`, a config changed less than cooldown + window ago, pods not yet
   serving the config.
2. Restart the search (new epoch) on a first observation, a config changed behind the tuner's
   back, or a new SLO.
3. Searching (`probing.search_step`): a probe is judged by capacity use against the
   incumbent's at comparable load, kept or rolled back; load that moved beyond
   `comparable_load_fraction` voids the comparison.
4. Converged: hold, and re-tune on load drift, size-mix drift, p95 drift or repeated SLO breaches
   (from a config the search measured within the target at this load, when there is one).

In recommend mode the same decision is computed and reported, the served config and the state
stay as they are.
"""

from __future__ import annotations

import math
from dataclasses import replace

from recsched_operator.tuner.compass import load_comparable
from recsched_operator.tuner.decision import Decision
from recsched_operator.tuner.knobs import KnobConfig, TuningBounds
from recsched_operator.tuner.objective import capacity_use
from recsched_operator.tuner.observation import Observation
from recsched_operator.tuner.probing import (
    DecisionInputs,
    Measure,
    converged_on_incumbent,
    probe_or_converge,
    restart_search,
    search_step,
)
from recsched_operator.tuner.reasons import describe_change, format_change, format_ms
from recsched_operator.tuner.settings import SloTarget, TuningMode, TuningSettings
from recsched_operator.tuner.state import Trial, TuningState


def _hold_reason(
    observation: Observation,
    current: KnobConfig,
    state: TuningState,
    slo: SloTarget,
    settings: TuningSettings,
    now_s: float,
) -> str | None:
    if observation.error is not None:
        return f"holding {current.describe()}: metrics unavailable: {observation.error}"
    if observation.samples < settings.min_samples:
        return (
            f"holding {current.describe()}: {observation.samples:.0f} queries in the window "
            f"< minimum {settings.min_samples}"
        )
    latency = observation.latency_ms(slo.percentile)
    if latency is None or observation.qps is None or not math.isfinite(observation.qps):
        return f"holding {current.describe()}: no p{slo.percentile} in the window (NaN or missing)"
    if state.last_change_s is not None:
        ready_at = state.last_change_s + settings.cooldown_s + slo.window_s
        if now_s < ready_at:
            return (
                f"holding {current.describe()}: cooldown {settings.cooldown_s:g} s + window "
                f"{slo.window_s:g} s since the last change, {ready_at - now_s:.0f} s left"
            )
    served = (observation.batch_size_items, observation.offload_threshold_items)
    wanted = (current.batch_size, current.offload_threshold)
    if any(s is not None and s != w for s, w in zip(served, wanted, strict=True)):
        return (
            f"holding: pods report batch {served[0]}, threshold {served[1]}; waiting for {wanted}"
        )
    return None


def _safe_trial(
    state: TuningState,
    current: KnobConfig,
    bounds: TuningBounds,
    qps: float,
    slo: SloTarget,
    settings: TuningSettings,
) -> Trial | None:
    """The probe of this search (epoch: same SLO) with the lowest capacity use that met the
    target at no less than about this load (within `comparable_load_fraction`), other than
    `current`; None if none did."""
    safe = [
        trial
        for trial in state.trials
        if trial.epoch == state.epoch
        and trial.config != current
        and bounds.contains(trial.config)
        and trial.latency_ms <= slo.target_ms
        and trial.qps >= qps * (1 - settings.comparable_load_fraction)
    ]
    return min(safe, key=lambda trial: trial.use, default=None)


def _converged(
    inputs: DecisionInputs, measure: Measure, state: TuningState
) -> tuple[Decision, TuningState]:
    observation, current, bounds, slo, settings, now_s = inputs
    latency, qps = measure.latency_ms, measure.qps
    p = f"p{slo.percentile}"
    drift: str | None = None
    near_target = settings.latency_headroom * slo.target_ms
    load_note = ""
    if not load_comparable(qps, state.converged_qps, settings.load_drift_fraction):
        moved = (
            f"load {state.converged_qps or 0:.0f}->{qps:.0f} qps "
            f"({format_change(qps, state.converged_qps)}, "
            f"beyond {settings.load_drift_fraction:.0%})"
        )
        if latency <= near_target:
            # Capacity (the QPS at which the target breaks) does not depend on the load, so
            # neither does the capacity optimum; while the served config keeps its latency
            # headroom a re-tune can only spend probes, each a risk of an interval over target
            # (issue 15's drift runs: 40-160 s over target after load steps the optimum
            # served within target). The p95-drift and breach rules below still re-tune once
            # latency leaves the headroom. Re-anchor so drift is measured from here.
            state = replace(state, converged_qps=qps)
            load_note = f"; {moved}, {p} within {settings.latency_headroom:.0%} of the target"
        else:
            drift = moved
    items, converged_items = observation.mean_query_items, state.converged_items
    if (
        drift is None
        and items is not None
        and converged_items
        and abs(items / converged_items - 1) > settings.size_drift_fraction
    ):
        drift = (
            f"mean query size {converged_items:.0f}->{items:.0f} items "
            f"({format_change(items, converged_items)}, beyond {settings.size_drift_fraction:.0%})"
        )
    over = state.over_target_streak + 1 if latency > slo.target_ms else 0
    converged_ms = state.converged_ms or latency
    # A p95 drift matters once it eats into the SLO's headroom; below that, a rise is the noise
    # of a busy window and re-tuning would only spend probes.
    drifted = latency > converged_ms * (1 + settings.p95_drift_fraction)
    drifting = state.drift_streak + 1 if drifted and latency > near_target else 0
    if drift is None and over >= settings.drift_intervals:
        breach = (
            f"{p} {format_ms(latency)} over target {format_ms(slo.target_ms)} for {over} intervals"
        )
        retreat = _safe_trial(state, current, bounds, qps, slo, settings)
        if retreat is not None:
            # At the same load, probing onwards from a config over its target keeps the service
            # over it until a probe happens to land within; a config this search measured within
            # the target at this load is a known way back. Re-tune from there.
            reason = (
                f"{breach}: {describe_change(current, retreat.config)}, measured at "
                f"{p} {format_ms(retreat.latency_ms)} at {retreat.qps:.0f} qps; re-tuning from it"
            )
            measured = Measure(retreat.use, retreat.latency_ms, retreat.qps)
            restarted = restart_search(state, retreat.config, measured, slo, step=1)
            # Its first window replaces the trial's measurement as the reference: the trial may
            # predate what broke the target (a GPU pod lost), and probes judged against a stale,
            # optimistic reference all look worse (issue 15's drift runs: 18 decisions).
            new_state = replace(restarted, last_change_s=now_s, reference_qps=None)
            return Decision.move("retune", current, retreat.config, reason), new_state
        drift = breach
    if drift is None and drifting >= settings.drift_intervals:
        drift = (
            f"{p} {format_ms(latency)} drifted {format_change(latency, converged_ms)} "
            f"from the converged "
            f"{format_ms(converged_ms)} for {drifting} intervals"
        )
    if drift is not None:
        restarted = restart_search(state, current, measure, slo, step=1)
        return probe_or_converge("retune", restarted, inputs, f"re-tuning on {drift}: ")
    # Track the converged latency slowly so gradual change within the bands does not accumulate.
    tracked = (
        math.exp(0.8 * math.log(converged_ms) + 0.2 * math.log(latency))
        if not drifting
        else converged_ms
    )
    new_state = replace(state, over_target_streak=over, drift_streak=drifting, converged_ms=tracked)
    reason = (
        f"converged at {current.describe()}: {p} {format_ms(latency)} "
        f"({'over' if latency > slo.target_ms else 'within'} target {format_ms(slo.target_ms)}) "
        f"at {qps:.0f} qps{load_note}"
    )
    return Decision.hold(current, reason), new_state


def _decide_auto(inputs: DecisionInputs, state: TuningState) -> tuple[Decision, TuningState]:
    observation, current, bounds, slo, settings, now_s = inputs
    if not bounds.contains(current):
        target = bounds.clamp(current)
        reason = f"{describe_change(current, target)}: {current.describe()} lies outside the bounds"
        new_state = replace(state, incumbent=None, probe=None, last_change_s=now_s)
        return Decision.move("retune", current, target, reason), new_state
    hold = _hold_reason(observation, current, state, slo, settings, now_s)
    if hold is not None:
        return Decision.hold(current, hold), state
    latency = observation.latency_ms(slo.percentile)
    use = capacity_use(observation, slo, settings)
    assert latency is not None and observation.qps is not None and use is not None
    items = observation.mean_query_items
    measure = Measure(use, latency, observation.qps, items * observation.qps if items else None)
    expected = state.probe or state.incumbent
    if expected is None:
        fresh = restart_search(state, current, measure, slo, step=settings.initial_step)
        return probe_or_converge("probe", fresh, inputs, "start: ")
    if expected != current:
        fresh = restart_search(state, current, measure, slo, step=settings.initial_step)
        preface = f"serving {current.describe()}, not the tuner's {expected.describe()}: "
        return probe_or_converge("retune", fresh, inputs, preface)
    if (state.slo_percentile, state.slo_target_ms) != (slo.percentile, slo.target_ms):
        old = f"p{state.slo_percentile} <= {state.slo_target_ms or 0:g} ms"
        if state.probe is not None:
            # The probe ran under the old target; go back and restart from the incumbent.
            reason = f"SLO changed {old} -> {slo.describe()}: back to the incumbent to re-tune"
            new_state = replace(state, probe=None, last_change_s=now_s)
            return Decision.move("retune", current, state.incumbent or current, reason), new_state
        tighter = slo.percentile >= (state.slo_percentile or 0) and slo.target_ms <= (
            state.slo_target_ms or math.inf
        )
        if tighter and latency <= settings.latency_headroom * slo.target_ms:
            # A tighter target only raises other configs' capacity use (their latency can only
            # eat more of the smaller headroom) and leaves the served config's as it was while
            # its latency stays inside the new headroom: the converged config stays the best
            # the search knows, and probing would only risk intervals over the new target
            # (issue 15's drift runs: 40-120 s). The drift and breach rules still apply.
            # Mid-search too: the incumbent is the best config the search has measured, and
            # walking on among near-equals under the tighter target broke it (WnD on the H200,
            # whose flat landscape was still being searched at the edit: 40-80 s over target).
            kept = replace(
                state if state.phase == "converged" else converged_on_incumbent(state, observation),
                slo_percentile=slo.percentile,
                slo_target_ms=slo.target_ms,
                converged_ms=latency,
                over_target_streak=0,
                drift_streak=0,
            )
            reason = (
                f"SLO changed {old} -> {slo.describe()}: staying at {current.describe()}, "
                f"p{slo.percentile} {format_ms(latency)} is within "
                f"{settings.latency_headroom:.0%} of the new target"
            )
            return Decision.hold(current, reason), kept
        fresh = restart_search(state, current, measure, slo, step=1)
        preface = f"SLO changed {old} -> {slo.describe()}: re-tuning; "
        return probe_or_converge("retune", fresh, inputs, preface)
    if state.phase == "converged":
        return _converged(inputs, measure, state)
    return search_step(inputs, measure, state)


def decide_next_config(
    observation: Observation,
    current: KnobConfig,
    state: TuningState,
    bounds: TuningBounds,
    slo: SloTarget,
    settings: TuningSettings,
    mode: TuningMode | str,
    now_s: float,
) -> tuple[Decision, TuningState]:
    """Decide what to serve next from one window's observation; see the module docstring."""
    mode = TuningMode(mode)
    if mode is TuningMode.OFF:
        return Decision.hold(current, f"tuning off; serving {current.describe()}"), state
    inputs = DecisionInputs(observation, current, bounds, slo, settings, now_s)
    decision, new_state = _decide_auto(inputs, state)
    new_state = replace(new_state, decisions=state.decisions + 1)
    if mode is TuningMode.RECOMMEND:
        if decision.config == current:
            reason = f"no change recommended ({decision.action}): {decision.reason}"
        else:
            reason = f"recommend {describe_change(current, decision.config)}: {decision.reason}"
        recommendation = Decision("recommend", reason, current, False, current, decision.config)
        return recommendation, replace(state, decisions=state.decisions + 1)
    return decision, new_state
