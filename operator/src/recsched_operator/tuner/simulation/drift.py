"""Drift on the simulator: the tuner, a static config and a re-run one-shot search after a change.

A run serves the tuner's configs for `change_at` intervals of one scenario, then the scenario
changes (load up or down, the size mix, the SLO target by a spec edit, the GPU pod gone) and the
run goes on for `after` intervals. Each interval is cooldown + window (40 s) of serving one config.
Whether an interval met the SLO is judged on the served config's noise-free latency at the
post-change load (`CapacityModel.latency_ms`, common random numbers), not on the tuner's noisy
observation, so noise neither hides nor invents violations.

Baselines over the same post-change horizon: the pre-change optimum kept (static), and
DeepRecSched's one-shot hill climb re-run after the change on exact capacities, each config it
tries served for the 8192 queries its load sweep costs, then its choice kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recsched_operator.tuner import KnobConfig, SloTarget, TuningBounds, TuningSettings
from recsched_operator.tuner.simulation.capacity import CapacityModel
from recsched_operator.tuner.simulation.tuning_run import (
    LoopStep,
    SimulatedService,
    closed_loop,
    settled_config,
)

PAPER_BATCHES = (512, 384, 256, 192, 128, 96, 64, 48, 32)  # run_Scheduler.sh --batch_configs
PAPER_THRESHOLDS = (96, 128, 192, 256, 384, 512)  # run_Scheduler.sh --accel_configs
PAPER_QUERIES_PER_CONFIG = 8192  # 128 updates x 64 queries (facts file section 4.3)


@dataclass(frozen=True)
class Phase:
    """What is served and judged: the service (scenario at a load), its SLO and capacity model."""

    service: SimulatedService
    slo: SloTarget
    capacity: CapacityModel
    optimum: KnobConfig
    optimum_qps: float


@dataclass
class Judge:
    """Noise-free verdicts of configs at the post-change load, cached."""

    phase: Phase
    _latency: dict[KnobConfig, float] = field(default_factory=dict)

    def meets(self, config: KnobConfig) -> bool:
        if config not in self._latency:
            self._latency[config] = self.phase.capacity.latency_ms(config, self.phase.service.qps)
        return self._latency[config] <= self.phase.slo.target_ms

    def capacity_share(self, config: KnobConfig) -> float:
        optimum = self.phase.optimum_qps
        return self.phase.capacity.capacity_qps(config) / optimum if optimum > 0 else 0.0

    @property
    def feasible(self) -> bool:
        """Some grid config meets the target at the post-change load."""
        return self.phase.optimum_qps >= self.phase.service.qps


@dataclass(frozen=True)
class Outcome:
    """One policy's record after the change. `met_after_decisions` counts post-change decisions
    before the first interval that meets the SLO (0: never violated); None if never met."""

    met_after_decisions: int | None
    met_after_s: float | None
    violation_s: float
    capacity_share: float
    final: KnobConfig


def interval_s(settings: TuningSettings, slo: SloTarget) -> float:
    return settings.cooldown_s + slo.window_s


def run_drift(
    before: Phase,
    after: Phase,
    bounds: TuningBounds,
    settings: TuningSettings,
    change_at: int,
    intervals_after: int,
    seed: int,
) -> tuple[Outcome, list[str]]:
    """The tuner from the pre-change optimum through the change; its outcome and trace."""
    judge = Judge(after)
    step_s = interval_s(settings, after.slo)

    def phase_at(index: int) -> tuple[SimulatedService, SloTarget]:
        phase = before if index <= change_at else after
        return phase.service, phase.slo

    served_after: list[KnobConfig] = []
    trace = []
    last: LoopStep | None = None
    intervals = change_at + intervals_after
    for last in closed_loop(phase_at, before.optimum, bounds, settings, intervals, seed):
        if last.index > change_at:
            served_after.append(last.served)
        trace.append(f"{last.index} {last.decision.action}: {last.decision.reason}")
    settled = settled_config(last, before.optimum)
    return _outcome(served_after, judge, step_s, settled), trace


def _outcome(served: list[KnobConfig], judge: Judge, step_s: float, final: KnobConfig) -> Outcome:
    first = next((i for i, config in enumerate(served) if judge.meets(config)), None)
    violations = sum(1 for config in served if not judge.meets(config))
    return Outcome(
        met_after_decisions=first,
        met_after_s=None if first is None else first * step_s,
        violation_s=violations * step_s,
        capacity_share=judge.capacity_share(final),
        final=final,
    )


def static_outcome(before: Phase, after: Phase, horizon_s: float, step_s: float) -> Outcome:
    """The pre-change optimum kept through the change."""
    judge = Judge(after)
    meets = judge.meets(before.optimum)
    return Outcome(
        met_after_decisions=0 if meets else None,
        met_after_s=0.0 if meets else None,
        violation_s=0.0 if meets else horizon_s,
        capacity_share=judge.capacity_share(before.optimum),
        final=before.optimum,
    )


def paper_search(capacity: CapacityModel, gpu: bool) -> list[KnobConfig]:
    """Configs DeepRecSched's hill climb tries, in order, on exact capacities: the batch list
    with T = 1024 until the first drop, then the threshold list with that batch (skipped
    without a GPU pool). The last config of the returned list that did not drop is its choice,
    returned last."""
    tried: list[KnobConfig] = []

    def climb(configs: list[KnobConfig]) -> KnobConfig:
        best = configs[0]
        best_qps = capacity.capacity_qps(best)
        tried.append(best)
        for config in configs[1:]:
            qps = capacity.capacity_qps(config)
            tried.append(config)
            if qps < best_qps:
                break
            best, best_qps = config, qps
        return best

    chosen = climb([KnobConfig(b, 1024) for b in PAPER_BATCHES])
    if gpu:
        chosen = climb([KnobConfig(chosen.batch_size, t) for t in PAPER_THRESHOLDS])
    return [*tried, chosen]


def paper_outcome(after: Phase, horizon_s: float, step_s: float) -> tuple[Outcome, int]:
    """The one-shot search re-run after the change: each config tried served for the 8192
    queries its load sweep costs, then its choice for the rest of the horizon."""
    judge = Judge(after)
    configs = paper_search(after.capacity, after.service.scenario.cluster.gpu_pods > 0)
    *tried, chosen = configs
    per_config_s = PAPER_QUERIES_PER_CONFIG / after.service.qps
    elapsed = violation = 0.0
    met_at: float | None = None
    for config in tried:
        if elapsed >= horizon_s:
            break
        spent = min(per_config_s, horizon_s - elapsed)
        if judge.meets(config):
            met_at = elapsed if met_at is None else met_at
        else:
            violation += spent
        elapsed += spent
    rest = max(0.0, horizon_s - elapsed)
    if rest > 0:
        if judge.meets(chosen):
            met_at = elapsed if met_at is None else met_at
        else:
            violation += rest
    outcome = Outcome(
        met_after_decisions=None if met_at is None else int(met_at // step_s),
        met_after_s=met_at,
        violation_s=violation,
        capacity_share=judge.capacity_share(chosen),
        final=chosen,
    )
    return outcome, len(tried)
