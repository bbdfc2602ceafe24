"""The tuner: (observation, served config, state, bounds, SLO, settings, mode, now) -> decision.

Pure and deterministic: no clock, no I/O, no randomness; the caller passes `now_s` and stores the
returned state. One call per measurement window. The flow:

1. Hold when there is nothing trustworthy to judge: mode off, an observation error or NaN, fewer
   queries than `min_samples`, a config changed less than cooldown + window ago, pods not yet
   serving the config.
2. Restart the search (new epoch) on a first observation, a config changed behind the tuner's
   back, or a new SLO.
3. Searching: a probe is judged against the incumbent's reference latency at comparable load
   (better beyond the noise band: kept, and the next probe follows at once; worse, tied, or
   breaking the SLO the incumbent met: rolled back). Load that moved beyond
   `comparable_load_fraction` voids the comparison. Serving the incumbent refreshes its reference
   and picks the next probe (`search.pick_candidate`), or converges when none is left.
4. Converged: hold, and re-tune on load drift, size-mix drift, p95 drift or repeated SLO breaches.

In recommend mode the same decision is computed and reported, the served config and the state
stay as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from recsched_operator.tuning.decision import Action, Decision
from recsched_operator.tuning.knobs import KNOBS, KnobConfig, TuningBounds, describe_knob_value
from recsched_operator.tuning.objective import capacity_use, describe_use
from recsched_operator.tuning.observation import Observation
from recsched_operator.tuning.search import Candidate, load_comparable, pick_candidate
from recsched_operator.tuning.settings import SloTarget, TuningMode, TuningSettings
from recsched_operator.tuning.state import Trial, TuningState, Verdict


def describe_change(before: KnobConfig, after: KnobConfig) -> str:
    """'batch 64->128' / 'threshold 256->off' / both, or the config when nothing changes."""
    parts = [
        f"{knob} {describe_knob_value(knob, before.value(knob))}->"
        f"{describe_knob_value(knob, after.value(knob))}"
        for knob in KNOBS
        if before.value(knob) != after.value(knob)
    ]
    return ", ".join(parts) if parts else after.describe()


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.0f}%"


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
        return f"holding: pods report batch {served[0]}, threshold {served[1]}; waiting for {wanted}"
    return None


@dataclass(frozen=True)
class _Measure:
    """One window reduced to what the search compares: capacity use, latency (ms), QPS."""

    use: float
    latency_ms: float
    qps: float


def _restart(
    state: TuningState, current: KnobConfig, measure: _Measure, slo: SloTarget, step: int
) -> TuningState:
    """A fresh search (new epoch) from `current`, measured now."""
    return replace(
        state,
        phase="search",
        epoch=state.epoch + 1,
        incumbent=current,
        reference_use=measure.use,
        reference_ms=measure.latency_ms,
        reference_qps=measure.qps,
        reference_count=1,
        probe=None,
        probe_knob=None,
        probe_step=0,
        focus_knob=None,
        batch_step=step,
        threshold_step=step,
        slo_percentile=slo.percentile,
        slo_target_ms=slo.target_ms,
        over_target_streak=0,
        drift_streak=0,
    )


def _probe_or_converge(
    action: Action,
    state: TuningState,
    current: KnobConfig,
    observation: Observation,
    bounds: TuningBounds,
    slo: SloTarget,
    settings: TuningSettings,
    now_s: float,
    preface: str,
) -> tuple[Decision, TuningState]:
    """From the incumbent in `state`, start the next probe, or converge if no neighbour is left."""
    incumbent = state.incumbent
    assert incumbent is not None and state.reference_ms is not None
    where = (
        f"p{slo.percentile} {_ms(state.reference_ms)} (target {_ms(slo.target_ms)}), capacity use "
        f"{state.reference_use or 0:.2f} at {state.reference_qps or 0:.0f} qps"
    )
    candidate = pick_candidate(incumbent, state, observation, bounds, settings, slo)
    if candidate is None:
        new_state = replace(
            state,
            phase="converged",
            probe=None,
            converged_qps=state.reference_qps,
            converged_ms=state.reference_ms,
            converged_items=observation.mean_query_items,
            over_target_streak=0,
            drift_streak=0,
        )
        if incumbent != current:
            new_state = replace(new_state, last_change_s=now_s)
        reason = f"{preface}converged at {incumbent.describe()}: {where}; no neighbour is better"
        return Decision.move("converge", current, incumbent, reason), new_state
    new_state = _start_probe(state, candidate, now_s)
    reason = (
        f"{preface}{describe_change(current, candidate.config)}: {where}; "
        f"{candidate.describe(incumbent)}"
    )
    return Decision.move(action, current, candidate.config, reason), new_state


def _start_probe(state: TuningState, candidate: Candidate, now_s: float) -> TuningState:
    return replace(
        state.with_knob(candidate.knob, step=candidate.step),
        probe=candidate.config,
        probe_knob=candidate.knob,
        probe_step=candidate.step,
        focus_knob=candidate.knob,
        last_change_s=now_s,
    )


def _judge_probe(
    probe: _Measure, state: TuningState, slo: SloTarget, settings: TuningSettings
) -> Verdict:
    reference_use = state.reference_use or probe.use
    if probe.latency_ms > slo.target_ms >= (state.reference_ms or 0.0):
        return "broke-slo"
    if probe.use < reference_use * (1 - settings.noise_band):
        return "better"
    if probe.use > reference_use * (1 + settings.noise_band):
        return "worse"
    return "tie"


def _geometric_update(old: float | None, new: float, count: int) -> float:
    if old is None or old <= 0 or new <= 0:
        return new
    return math.exp((count * math.log(old) + math.log(new)) / (count + 1))


def _search(
    observation: Observation,
    measure: _Measure,
    current: KnobConfig,
    state: TuningState,
    bounds: TuningBounds,
    slo: SloTarget,
    settings: TuningSettings,
    now_s: float,
) -> tuple[Decision, TuningState]:
    assert state.incumbent is not None
    incumbent, qps = state.incumbent, measure.qps
    if state.probe is None:
        # Serving the incumbent: fold this measurement into its reference, then probe on.
        if load_comparable(qps, state.reference_qps, settings.comparable_load_fraction):
            count = min(state.reference_count, settings.reference_measurements - 1)
            state = replace(
                state,
                reference_use=_geometric_update(state.reference_use, measure.use, count),
                reference_ms=_geometric_update(state.reference_ms, measure.latency_ms, count),
                reference_qps=((state.reference_qps or qps) * count + qps) / (count + 1),
                reference_count=count + 1,
            )
        else:
            state = replace(
                state,
                reference_use=measure.use,
                reference_ms=measure.latency_ms,
                reference_qps=qps,
                reference_count=1,
            )
        return _probe_or_converge(
            "probe", state, current, observation, bounds, slo, settings, now_s, ""
        )
    probe, knob = state.probe, state.probe_knob or "batch"
    if not load_comparable(qps, state.reference_qps, settings.comparable_load_fraction):
        new_state = replace(state, probe=None, last_change_s=now_s)
        reason = (
            f"{describe_change(probe, incumbent)}: load moved {state.reference_qps or 0:.0f}->"
            f"{qps:.0f} qps ({_pct(qps / (state.reference_qps or qps))}, beyond "
            f"{settings.comparable_load_fraction:.0%}); comparison discarded, re-measuring "
            f"the incumbent"
        )
        return Decision.move("rollback", current, incumbent, reason), new_state
    verdict = _judge_probe(measure, state, slo, settings)
    trial = Trial(probe, measure.use, measure.latency_ms, qps, verdict, now_s, state.epoch)
    state = state.with_trial(trial, settings.history_length)
    reference_use = state.reference_use or measure.use
    versus = (
        f"{describe_use(observation, slo, measure.use)} vs {reference_use:.2f} "
        f"({_pct(measure.use / reference_use)}; p{slo.percentile} was {_ms(state.reference_ms or 0)})"
    )
    if verdict == "better":
        direction = 1 if probe.value(knob) > incumbent.value(knob) else -1
        accepted = replace(
            state.with_knob(
                knob, step=min(state.probe_step * 2, settings.max_step), direction=direction
            ),
            incumbent=probe,
            reference_use=measure.use,
            reference_ms=measure.latency_ms,
            reference_qps=qps,
            reference_count=1,
            probe=None,
        )
        preface = f"kept {describe_change(incumbent, probe)}: {versus}; "
        return _probe_or_converge(
            "probe", accepted, current, observation, bounds, slo, settings, now_s, preface
        )
    why = {
        "broke-slo": f"breaks the target {_ms(slo.target_ms)} the incumbent met",
        "worse": f"worse beyond the {settings.noise_band:.0%} band",
        "tie": f"within the {settings.noise_band:.0%} band, not worth a change",
    }[verdict]
    reason = f"{describe_change(probe, incumbent)} (rollback): {versus}, {why}"
    new_state = replace(state, probe=None, last_change_s=now_s)
    return Decision.move("rollback", current, incumbent, reason), new_state


def _converged(
    observation: Observation,
    measure: _Measure,
    current: KnobConfig,
    state: TuningState,
    bounds: TuningBounds,
    slo: SloTarget,
    settings: TuningSettings,
    now_s: float,
) -> tuple[Decision, TuningState]:
    latency, qps = measure.latency_ms, measure.qps
    p = f"p{slo.percentile}"
    drift: str | None = None
    if not load_comparable(qps, state.converged_qps, settings.load_drift_fraction):
        drift = (
            f"load {state.converged_qps or 0:.0f}->{qps:.0f} qps "
            f"({_pct(qps / (state.converged_qps or qps))}, beyond {settings.load_drift_fraction:.0%})"
        )
    items, converged_items = observation.mean_query_items, state.converged_items
    if drift is None and items is not None and converged_items:
        if abs(items / converged_items - 1) > settings.size_drift_fraction:
            drift = (
                f"mean query size {converged_items:.0f}->{items:.0f} items "
                f"({_pct(items / converged_items)}, beyond {settings.size_drift_fraction:.0%})"
            )
    over = state.over_target_streak + 1 if latency > slo.target_ms else 0
    converged_ms = state.converged_ms or latency
    drifting = state.drift_streak + 1 if latency > converged_ms * (1 + settings.p95_drift_fraction) else 0
    if drift is None and over >= settings.drift_intervals:
        drift = f"{p} {_ms(latency)} over target {_ms(slo.target_ms)} for {over} intervals"
    if drift is None and drifting >= settings.drift_intervals:
        drift = (
            f"{p} {_ms(latency)} drifted {_pct(latency / converged_ms)} from the converged "
            f"{_ms(converged_ms)} for {drifting} intervals"
        )
    if drift is not None:
        restarted = _restart(state, current, measure, slo, step=1)
        return _probe_or_converge(
            "retune", restarted, current, observation, bounds, slo, settings, now_s,
            f"re-tuning on {drift}: ",
        )
    # Track the converged latency slowly so gradual change within the bands does not accumulate.
    tracked = math.exp(0.8 * math.log(converged_ms) + 0.2 * math.log(latency)) if not drifting else converged_ms
    new_state = replace(state, over_target_streak=over, drift_streak=drifting, converged_ms=tracked)
    reason = (
        f"converged at {current.describe()}: {p} {_ms(latency)} "
        f"({'over' if latency > slo.target_ms else 'within'} target {_ms(slo.target_ms)}) "
        f"at {qps:.0f} qps"
    )
    return Decision.hold(current, reason), new_state


def _decide_auto(
    observation: Observation,
    current: KnobConfig,
    state: TuningState,
    bounds: TuningBounds,
    slo: SloTarget,
    settings: TuningSettings,
    now_s: float,
) -> tuple[Decision, TuningState]:
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
    measure = _Measure(use, latency, observation.qps)
    expected = state.probe or state.incumbent
    if expected is None:
        fresh = _restart(state, current, measure, slo, step=settings.initial_step)
        return _probe_or_converge(
            "probe", fresh, current, observation, bounds, slo, settings, now_s, "start: "
        )
    if expected != current:
        fresh = _restart(state, current, measure, slo, step=settings.initial_step)
        preface = f"serving {current.describe()}, not the tuner's {expected.describe()}: "
        return _probe_or_converge(
            "retune", fresh, current, observation, bounds, slo, settings, now_s, preface
        )
    if (state.slo_percentile, state.slo_target_ms) != (slo.percentile, slo.target_ms):
        old = f"p{state.slo_percentile} <= {state.slo_target_ms or 0:g} ms"
        if state.probe is not None:
            # The probe ran under the old target; go back and restart from the incumbent.
            reason = f"SLO changed {old} -> {slo.describe()}: back to the incumbent to re-tune"
            new_state = replace(state, probe=None, last_change_s=now_s)
            return Decision.move("retune", current, state.incumbent or current, reason), new_state
        fresh = _restart(state, current, measure, slo, step=1)
        preface = f"SLO changed {old} -> {slo.describe()}: re-tuning; "
        return _probe_or_converge(
            "retune", fresh, current, observation, bounds, slo, settings, now_s, preface
        )
    if state.phase == "converged":
        return _converged(observation, measure, current, state, bounds, slo, settings, now_s)
    return _search(observation, measure, current, state, bounds, slo, settings, now_s)


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
    decision, new_state = _decide_auto(observation, current, state, bounds, slo, settings, now_s)
    new_state = replace(new_state, decisions=state.decisions + 1)
    if mode is TuningMode.RECOMMEND:
        if decision.config == current:
            reason = f"no change recommended ({decision.action}): {decision.reason}"
        else:
            reason = f"recommend {describe_change(current, decision.config)}: {decision.reason}"
        recommendation = Decision("recommend", reason, current, False, current, decision.config)
        return recommendation, replace(state, decisions=state.decisions + 1)
    return decision, new_state
