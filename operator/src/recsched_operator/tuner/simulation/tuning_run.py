"""The tuner against the simulator: a seeded closed loop, and the issue's floors measured on it.

Each interval the simulated service serves the config the tuner chose for one measurement window
(after the cooldown), at a fixed offered load, and reports an `Observation` with multiplicative
lognormal noise (default 10%) on every latency and utilisation: the tuner sees what it would see
from Prometheus, only noisier. Windows start from an empty system and drop a 10% warm-up, so an
overloaded config shows as a huge p95 rather than a backlog carried into the next window.

`evaluate_run` scores a run against the grid optimum of the same scenario: the first decision
after which the tuner's incumbent stays within 95% of the optimum capacity, whether and when it
converged, and the longest run of intervals over target after converging.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from recsched_operator.tuner import (
    KnobConfig,
    Observation,
    SloTarget,
    TuningBounds,
    TuningMode,
    TuningSettings,
    decide_next_config,
    initial_state,
)
from recsched_operator.tuner.decision import Decision
from recsched_operator.tuner.simulation.capacity import CapacityModel, Scenario
from recsched_operator.tuner.simulation.engine import simulate_window
from recsched_operator.tuner.state import TuningState


@dataclass(frozen=True)
class SimulatedService:
    """One scenario served at `qps`; `window_queries` caps the queries simulated per window.

    `latency_noise` is the sigma of the lognormal factor on every latency percentile (10%: the
    issue's noise, for histogram-bucket interpolation and jitter on top of the window's own
    sampling noise). `utilization_noise` is smaller by default because utilisation is the rate of a
    counter of compute seconds, with no quantile estimate in it.
    """

    scenario: Scenario
    qps: float
    window_queries: int = 20000
    latency_noise: float = 0.10
    utilization_noise: float = 0.02

    def observe(
        self, config: KnobConfig, at_s: float, window_s: float, rng: np.random.Generator
    ) -> Observation:
        queries = int(min(self.window_queries, max(self.qps * window_s, 200)))
        result = simulate_window(
            self.scenario.profile,
            config.batch_size,
            config.offload_threshold,
            self.scenario.cluster,
            self.scenario.sizes,
            self.qps,
            queries,
            rng,
        )

        def noisy(value: float | None, sigma: float) -> float | None:
            if value is None or sigma <= 0:
                return value
            return value * math.exp(rng.normal(0.0, sigma))

        offloaded = float(result.on_gpu.mean()) if result.queries else None
        return Observation(
            at_s=at_s,
            qps=result.measured_qps,
            p95_ms=noisy(result.percentile_ms(95), self.latency_noise),
            p99_ms=noisy(result.percentile_ms(99), self.latency_noise),
            samples=float(result.queries),
            cpu_p95_ms=noisy(result.percentile_ms(95, "cpu"), self.latency_noise),
            gpu_p95_ms=noisy(result.percentile_ms(95, "gpu"), self.latency_noise),
            offloaded_fraction=offloaded,
            mean_query_items=float(result.items.mean()) if result.queries else None,
            p95_query_items=float(np.percentile(result.items, 95)) if result.queries else None,
            rejected_fraction=0.0,
            cpu_utilization=noisy(result.utilization("cpu"), self.utilization_noise),
            gpu_utilization=noisy(
                result.utilization("gpu") if offloaded else None, self.utilization_noise
            ),
            batch_size_items=config.batch_size,
            offload_threshold_items=config.offload_threshold,
            window_s=window_s,
        )


@dataclass(frozen=True)
class TraceStep:
    """One interval: what was served and observed, and what the tuner decided."""

    index: int
    at_s: float
    served: KnobConfig
    observed_ms: float | None
    qps: float | None
    action: str
    reason: str
    next_config: KnobConfig
    incumbent: KnobConfig | None
    phase: str

    def to_dict(self) -> dict[str, object]:
        return {
            "decision": self.index,
            "atS": round(self.at_s, 3),
            "served": self.served.to_dict(),
            "observedMs": None if self.observed_ms is None else round(self.observed_ms, 3),
            "qps": None if self.qps is None else round(self.qps, 1),
            "action": self.action,
            "reason": self.reason,
            "next": self.next_config.to_dict(),
            "phase": self.phase,
        }


@dataclass(frozen=True)
class TuningRun:
    """The trace and the config the tuner settled on (its incumbent if a probe was in flight)."""

    steps: tuple[TraceStep, ...]
    final: KnobConfig


@dataclass(frozen=True)
class LoopStep:
    """One interval of the closed loop: the config served, what the tuner saw and decided."""

    index: int
    now_s: float
    served: KnobConfig
    observation: Observation
    decision: Decision
    state: TuningState


def closed_loop(
    interval: Callable[[int], tuple[SimulatedService, SloTarget]],
    start: KnobConfig,
    bounds: TuningBounds,
    settings: TuningSettings,
    intervals: int,
    seed: int,
    mode: TuningMode = TuningMode.AUTO,
) -> Iterator[LoopStep]:
    """The tuner in closed loop with the simulator for `intervals` decisions from `start`, one
    per cooldown + window; `interval(index)` says what is served and its SLO at that decision."""
    rng = np.random.default_rng(seed)
    state = initial_state()
    config = start
    now_s = 0.0
    for index in range(1, intervals + 1):
        service, slo = interval(index)
        now_s += settings.cooldown_s + slo.window_s
        observation = service.observe(config, now_s, slo.window_s, rng)
        decision, state = decide_next_config(
            observation, config, state, bounds, slo, settings, mode, now_s
        )
        yield LoopStep(index, now_s, config, observation, decision, state)
        config = decision.config


def settled_config(last: LoopStep | None, start: KnobConfig) -> KnobConfig:
    """Where a loop ending at `last` settled: the incumbent if a probe was still in flight (it is
    not where the tuner settled), else the config it chose last; `start` if it made no decision."""
    if last is None:
        return start
    state = last.state
    return state.incumbent if state.probe is not None and state.incumbent else last.decision.config


def run_tuner(
    service: SimulatedService,
    start: KnobConfig,
    bounds: TuningBounds,
    slo: SloTarget,
    settings: TuningSettings,
    intervals: int,
    seed: int,
    mode: TuningMode = TuningMode.AUTO,
) -> TuningRun:
    """Run `intervals` decisions, one per cooldown + window, from `start`."""
    steps: list[TraceStep] = []
    last: LoopStep | None = None
    for last in closed_loop(
        lambda _: (service, slo), start, bounds, settings, intervals, seed, mode
    ):
        steps.append(
            TraceStep(
                index=last.index,
                at_s=last.now_s,
                served=last.served,
                observed_ms=last.observation.latency_ms(slo.percentile),
                qps=last.observation.qps,
                action=last.decision.action,
                reason=last.decision.reason,
                next_config=last.decision.config,
                incumbent=last.state.incumbent,
                phase=last.state.phase,
            )
        )
    return TuningRun(tuple(steps), settled_config(last, start))


@dataclass(frozen=True)
class RunScore:
    """How a run measures up to the floors (capacities in QPS, from the same CapacityModel)."""

    optimum: KnobConfig
    optimum_qps: float
    final: KnobConfig
    final_qps: float
    reached_at: int | None
    converged_at: int | None
    longest_violation_after_converging: int
    configs_tried: int
    capacity_of: dict[KnobConfig, float] = field(repr=False, default_factory=dict)

    @property
    def final_ratio(self) -> float:
        return self.final_qps / self.optimum_qps if self.optimum_qps > 0 else 0.0


def evaluate_run(
    run: TuningRun,
    model: CapacityModel,
    bounds: TuningBounds,
    slo: SloTarget,
    fraction: float = 0.95,
    optimum: tuple[KnobConfig, float] | None = None,
) -> RunScore:
    """`optimum` (config, QPS), when the caller has it, saves finding it again."""
    optimum_config, optimum_qps = optimum or model.optimum(bounds)
    good = {
        config: model.capacity_qps(config) >= fraction * optimum_qps
        for config in {step.incumbent or step.served for step in run.steps} | {run.final}
    }
    reached_at = None
    for step in run.steps:
        settled = step.incumbent or step.served
        if not good[settled]:
            reached_at = None
        elif reached_at is None:
            reached_at = step.index
    if not good[run.final]:
        reached_at = None
    converged_at = next((s.index for s in run.steps if s.phase == "converged"), None)
    longest = streak = 0
    for step in run.steps:
        if converged_at is None or step.index <= converged_at:
            continue
        over = step.observed_ms is not None and step.observed_ms > slo.target_ms
        streak = streak + 1 if over else 0
        longest = max(longest, streak)
    return RunScore(
        optimum=optimum_config,
        optimum_qps=optimum_qps,
        final=run.final,
        final_qps=model.capacity_qps(run.final),
        reached_at=reached_at,
        converged_at=converged_at,
        longest_violation_after_converging=longest,
        configs_tried=len({step.served for step in run.steps}),
        capacity_of={config: model.capacity_qps(config) for config in good},
    )


def worst_corner(model: CapacityModel, bounds: TuningBounds) -> KnobConfig:
    """The grid corner of lowest capacity (ties: the first in grid order)."""
    corners = [
        KnobConfig(b, t)
        for b in (bounds.batch_min, bounds.batch_max)
        for t in (bounds.threshold_min, bounds.threshold_max)
    ]
    return min(corners, key=model.capacity_qps)
