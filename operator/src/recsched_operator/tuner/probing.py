"""One decision of a running search: judge the probe in flight, or probe from the incumbent.

A probe is judged by capacity use (`objective.capacity_use`) against the incumbent's reference
at comparable load: lower beyond the noise band keeps it, and the next probe starts in the same
decision (no window is spent re-measuring what was just measured); higher, tied, or breaking the
SLO the incumbent met rolls it back, except that a tie leaning better is measured once more and
judged on the average, and kept if the average still leans better. Serving the incumbent folds
the window into its reference (a geometric mean of its last few measurements, so one noisy
window cannot decide alone; a window over the target the reference met replaces it instead,
since the cluster under the incumbent changed) and starts the next probe, or converges when
`compass.pick_candidate` has none left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

from recsched_operator.tuner.compass import (
    Candidate,
    load_comparable,
    overloaded,
    pick_candidate,
)
from recsched_operator.tuner.decision import Action, Decision
from recsched_operator.tuner.knobs import KNOBS, KnobConfig, TuningBounds
from recsched_operator.tuner.objective import describe_use
from recsched_operator.tuner.observation import Observation
from recsched_operator.tuner.reasons import describe_change, format_change, format_ms
from recsched_operator.tuner.settings import SloTarget, TuningSettings
from recsched_operator.tuner.state import Trial, TuningState, Verdict


@dataclass(frozen=True)
class Measure:
    """One window reduced to what the search compares: capacity use, latency (ms), QPS, and
    the items offered per second (QPS x mean query size), when known."""

    use: float
    latency_ms: float
    qps: float
    items_per_s: float | None = None

    def use_at(self, items_per_s: float | None) -> float:
        """Capacity use scaled to another item rate. Utilisation grows in proportion to the items
        offered per second, and heavy-tailed sizes make two windows at the same QPS differ by a
        few percent in items; without this a config would look better for having drawn smaller
        queries. (Only utilisation scales so; near the target the latency part is carried along
        as is, a small error where it matters least.)"""
        if items_per_s is None or self.items_per_s is None or self.items_per_s <= 0:
            return self.use
        return self.use * items_per_s / self.items_per_s


class DecisionInputs(NamedTuple):
    """What one decision is made from besides the tuner's state: the window's observation, the
    config served during it, the bounds, the SLO, the settings and the time (s)."""

    observation: Observation
    current: KnobConfig
    bounds: TuningBounds
    slo: SloTarget
    settings: TuningSettings
    now_s: float


def fresh_reference(state: TuningState, measure: Measure, qps: float) -> TuningState:
    """The incumbent's reference restarted from this one measurement (count 1)."""
    return replace(
        state,
        reference_use=measure.use,
        reference_ms=measure.latency_ms,
        reference_qps=qps,
        reference_items_per_s=measure.items_per_s,
        reference_count=1,
    )


def restart_search(
    state: TuningState, current: KnobConfig, measure: Measure, slo: SloTarget, step: int
) -> TuningState:
    """A fresh search (new epoch) from `current`, measured now."""
    return replace(
        fresh_reference(state, measure, measure.qps),
        phase="search",
        epoch=state.epoch + 1,
        incumbent=current,
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


def probe_or_converge(
    action: Action, state: TuningState, inputs: DecisionInputs, preface: str
) -> tuple[Decision, TuningState]:
    """From the incumbent in `state`, start the next probe, or converge if no neighbour is left."""
    observation, current, bounds, slo, settings, now_s = inputs
    incumbent = state.incumbent
    assert incumbent is not None and state.reference_ms is not None
    where = (
        f"p{slo.percentile} {format_ms(state.reference_ms)} "
        f"(target {format_ms(slo.target_ms)}), capacity use "
        f"{state.reference_use or 0:.2f} at {state.reference_qps or 0:.0f} qps"
    )
    candidate = pick_candidate(incumbent, state, observation, bounds, settings, slo)
    if candidate is None:
        # A window of the incumbent over its target counts towards the converged tuner's
        # breach streak: converging does not make that observation go away.
        latency = observation.latency_ms(slo.percentile)
        breached = incumbent == current and latency is not None and latency > slo.target_ms
        new_state = _converge(state, observation, over_target_streak=1 if breached else 0)
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


def settle(
    state: TuningState, observation: Observation, now_s: float, preface: str
) -> tuple[Decision, TuningState]:
    """Converge on the incumbent being served, without looking at more neighbours."""
    incumbent = state.incumbent
    assert incumbent is not None
    new_state = _converge(state, observation, over_target_streak=0)
    reason = (
        f"{preface}converged at {incumbent.describe()}: latency "
        f"{format_ms(state.reference_ms or 0.0)} keeps its headroom at "
        f"{state.reference_qps or 0:.0f} qps"
    )
    return Decision.hold(incumbent, reason), new_state


def converged_on_incumbent(state: TuningState, observation: Observation) -> TuningState:
    """The search ended on its incumbent (no interval over target counted yet)."""
    return _converge(state, observation, over_target_streak=0)


def _converge(state: TuningState, observation: Observation, over_target_streak: int) -> TuningState:
    """The converged phase on the incumbent, its reference measurement now the converged one."""
    return replace(
        state,
        phase="converged",
        probe=None,
        converged_qps=state.reference_qps,
        converged_ms=state.reference_ms,
        converged_items=observation.mean_query_items,
        over_target_streak=over_target_streak,
        drift_streak=0,
    )


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
    probe: Measure, state: TuningState, slo: SloTarget, settings: TuningSettings
) -> Verdict:
    use = probe.use_at(state.reference_items_per_s)
    reference_use = state.reference_use or use
    if probe.latency_ms > slo.target_ms >= (state.reference_ms or 0.0):
        return "broke-slo"
    if use < reference_use * (1 - settings.noise_band):
        return "better"
    if use > reference_use * (1 + settings.noise_band):
        return "worse"
    return "tie"


def _geometric_update(old: float | None, new: float, count: int) -> float:
    if old is None or old <= 0 or new <= 0:
        return new
    return math.exp((count * math.log(old) + math.log(new)) / (count + 1))


def incumbent_broke_target(measure: Measure, state: TuningState, slo: SloTarget) -> bool:
    """A window of the incumbent over the target that its reference met."""
    reference_ms = state.reference_ms
    return reference_ms is not None and measure.latency_ms > slo.target_ms >= reference_ms


def search_step(
    inputs: DecisionInputs, measure: Measure, state: TuningState
) -> tuple[Decision, TuningState]:
    observation, current, bounds, slo, settings, now_s = inputs
    assert state.incumbent is not None
    incumbent, qps = state.incumbent, measure.qps
    if state.probe is None:
        # Serving the incumbent: fold this measurement into its reference, then probe on.
        if incumbent_broke_target(measure, state, slo):
            # The incumbent measured within the target now breaks it at the same load: what it
            # runs on changed (a GPU pod lost in mid-search). Its old windows no longer describe
            # it, and folded in they kept a stale, optimistic reference that every probe lost
            # to (issue 15's drift runs: WnD on the H200, 8 decisions to meet the target).
            state = fresh_reference(state, measure, qps)
        elif load_comparable(qps, state.reference_qps, settings.comparable_load_fraction):
            count = min(state.reference_count, settings.reference_measurements - 1)
            use = measure.use_at(state.reference_items_per_s)
            state = replace(
                state,
                reference_use=_geometric_update(state.reference_use, use, count),
                reference_ms=_geometric_update(state.reference_ms, measure.latency_ms, count),
                reference_qps=((state.reference_qps or qps) * count + qps) / (count + 1),
                reference_count=count + 1,
            )
        else:
            stepped = not load_comparable(qps, state.reference_qps, settings.load_drift_fraction)
            state = fresh_reference(state, measure, qps)
            if stepped and measure.latency_ms <= settings.latency_headroom * slo.target_ms:
                # The load stepped (beyond the converged tuner's drift band) in mid-search and
                # the incumbent keeps its latency headroom: settle on it, as a converged tuner
                # would not re-tune on that step. Probing on at the new load risks intervals
                # over target on configs measured only at the old one (issue 15's drift runs:
                # 40-120 s); the drift and breach rules take over from here.
                return settle(state, observation, now_s, "load stepped in mid-search: ")
        return probe_or_converge("probe", state, inputs, "")
    probe = state.probe
    if not load_comparable(qps, state.reference_qps, settings.comparable_load_fraction):
        new_state = replace(
            state, probe=None, probe_use=None, probe_ms=None, probe_count=0, last_change_s=now_s
        )
        reason = (
            f"{describe_change(probe, incumbent)}: "
            f"load moved {state.reference_qps or 0:.0f}->"
            f"{qps:.0f} qps ({format_change(qps, state.reference_qps)}, beyond "
            f"{settings.comparable_load_fraction:.0%}); comparison discarded, re-measuring "
            f"the incumbent"
        )
        return Decision.move("rollback", current, incumbent, reason), new_state
    if state.probe_count > 0 and state.probe_use is not None and state.probe_ms is not None:
        # A close call measured again: judge the average of both windows.
        measure = replace(
            measure,
            use=_geometric_update(state.probe_use, measure.use_at(state.reference_items_per_s), 1),
            latency_ms=_geometric_update(state.probe_ms, measure.latency_ms, 1),
            items_per_s=state.reference_items_per_s,
        )
    verdict = _judge_probe(measure, state, slo, settings)
    use = measure.use_at(state.reference_items_per_s)
    if verdict == "tie" and state.probe_count > 0 and use < (state.reference_use or use):
        # Two windows of the probe still lean better: keep it. Rolling it back left the search
        # on the worse of two near-equals, to come back to the probe only through the second
        # look at ties before converging, three to six decisions later, or never (issue 15:
        # rmc2 3x p99 settled on B = 64 at 94% after 256 leaned 1-2% better twice).
        verdict = "better"
    if (
        verdict == "tie"
        and state.probe_count == 0
        and use < (state.reference_use or use)
        and not overloaded(state, settings)
    ):
        # Leaning better but inside the band: flat stretches of the capacity curve look like
        # this, and one more window halves the noise before the search gives the point up
        # (not while the incumbent is overloaded or over target: there only big gains count).
        reason = (
            f"measuring {probe.describe()} again: capacity use {use:.2f} vs "
            f"{state.reference_use or use:.2f} ({format_change(use, state.reference_use)}) is "
            f"lower but within the {settings.noise_band:.0%} band"
        )
        again = replace(state, probe_use=use, probe_ms=measure.latency_ms, probe_count=1)
        return Decision("probe", reason, current, False, current, current), again
    state = replace(state, probe_use=None, probe_ms=None, probe_count=0)
    trial = Trial(
        probe,
        use,
        measure.latency_ms,
        qps,
        verdict,
        now_s,
        state.epoch,
        observation.gpu_utilization,
    )
    state = state.with_trial(trial, settings.history_length)
    reference_use = state.reference_use or use
    versus = (
        f"{describe_use(observation, slo, use)} vs {reference_use:.2f} "
        f"({format_change(use, reference_use)}; "
        f"p{slo.percentile} was {format_ms(state.reference_ms or 0)})"
    )
    if verdict == "better":
        accepted = state
        for moved in KNOBS:
            if probe.value(moved) != incumbent.value(moved):
                accepted = accepted.with_knob(
                    moved,
                    step=min(state.probe_step * 2, settings.max_step),
                    direction=1 if probe.value(moved) > incumbent.value(moved) else -1,
                )
        accepted = replace(fresh_reference(accepted, measure, qps), incumbent=probe, probe=None)
        preface = f"kept {describe_change(incumbent, probe)}: {versus}; "
        return probe_or_converge("probe", accepted, inputs, preface)
    why = {
        "broke-slo": f"breaks the target {format_ms(slo.target_ms)} the incumbent met",
        "worse": f"worse beyond the {settings.noise_band:.0%} band",
        "tie": f"within the {settings.noise_band:.0%} band, not worth a change",
    }[verdict]
    reason = f"{describe_change(probe, incumbent)} (rollback): {versus}, {why}"
    # The knob that just lost gives up its priority (the observations choose the next one),
    # unless it lost (or tied: two overloaded configs, say, one on each side of the optimum) a
    # long step in the direction it had been winning in: then the optimum most likely lies
    # between, and the same knob at half the step goes next (a pattern
    # search's contraction) rather than probes of the other knob from a still-bad incumbent.
    knob = state.probe_knob
    overshot = (
        knob is not None
        and state.probe_step > 1
        and state.direction(knob) == (1 if probe.value(knob) > incumbent.value(knob) else -1)
    )
    # While the incumbent is overloaded, a knob that stopped paying hands over
    # to the other one: the bottleneck it left is what the other knob moves (a CPU pool
    # that no batch size relieves any more needs the threshold).
    others = [k for k in KNOBS if k != knob and len(bounds.grid(k)) > 1]
    stuck = overloaded(state, settings)
    if stuck and verdict == "tie" and knob == "batch" and others:
        # A batch step that changed nothing while overloaded: the batch is not what holds the
        # pools back (a CPU pool swamped by queries the GPU pool could take); contracting onto
        # it spent five decisions on batch sizes costing the same (rmc2 on the H200, issue 15).
        overshot = False
    focus = knob if overshot else others[0] if stuck and others else None
    new_state = replace(state, probe=None, last_change_s=now_s, focus_knob=focus)
    return Decision.move("rollback", current, incumbent, reason), new_state
