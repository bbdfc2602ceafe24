"""The tuner study's cases: every factor a user sets, sampled so each level meets every model.

Factors (issue 15): the model (8 measured profiles); the SLO target as a multiple of one worker's
time for a 1024-item request (0.5x, 1x, 1.5x, 3x); the tracked percentile (p95, p99); the
query-size mix (`heavy`, `production`, the paper's `lognormal`); the offered load as a share of
the grid optimum's capacity (50%, 75%, 90%); and the cluster: CPU pods only (the threshold pinned
off), or with a GPU pod whose times come from the speedup table (the shipped profiles) or from
the H200 measured by `bench/gpu_profile.py` (a data file read by path; the operator never imports
the pod).

`design` samples 12 of the 432 combinations per model: the full SLO x size-mix cross (4 x 3), with
load and cluster laid over it as two orthogonal Latin squares shifted per model (load = s + x + m,
cluster = s + 2x + m, mod 3, for SLO index s, mix index x, model index m), and the percentile
alternating. So per model every level of every factor appears (each SLO 3 times, each mix,
load and cluster 4 times, each percentile 6 times), no two of load, cluster and mix are tied to
each other within a model, and the shift gives other pairings in other models.

Capacities are deterministic per scenario (common random numbers, seed 0), so a study keeps them
in a `CapacityCache` and reruns (after a policy change) do not bisect them again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsched_operator.tuner import KnobConfig, SloTarget, TuningBounds, TuningSettings
from recsched_operator.tuner.simulation.capacity import CapacityModel, Scenario
from recsched_operator.tuner.simulation.engine import ClusterShape
from recsched_operator.tuner.simulation.profiles import (
    ServiceProfile,
    load_profile,
    with_measured_gpu,
)
from recsched_operator.tuner.simulation.tuning_run import (
    RunScore,
    SimulatedService,
    TuningRun,
    evaluate_run,
    run_tuner,
    worst_corner,
)
from recsched_operator.tuner.simulation.workload import SIZE_DISTRIBUTIONS

SLO_MULTIPLES: tuple[float, ...] = (0.5, 1.0, 1.5, 3.0)
PERCENTILES: tuple[int, ...] = (95, 99)
SIZE_MIXES: tuple[str, ...] = ("heavy", "production", "lognormal")
LOADS: tuple[float, ...] = (0.5, 0.75, 0.9)
CLUSTERS: tuple[str, ...] = ("cpu-only", "gpu-table", "gpu-h200")
GPU_BOUNDS = TuningBounds(batch_min=1, batch_max=1024, threshold_min=32, threshold_max=1025)
CPU_ONLY_BOUNDS = TuningBounds(batch_min=1, batch_max=1024, threshold_min=1025, threshold_max=1025)
WINDOW_S = 30.0


@dataclass(frozen=True, order=True)
class StudyCase:
    """One combination of the factors; seeds are run per case."""

    model: str
    slo_multiple: float
    percentile: int
    mix: str
    cluster: str
    load: float

    @property
    def scenario_key(self) -> str:
        """Everything that fixes capacities (the load does not)."""
        return f"{self.model}|{self.slo_multiple:g}|p{self.percentile}|{self.mix}|{self.cluster}"

    def describe(self) -> str:
        return (
            f"{self.model} {self.slo_multiple:g}x p{self.percentile} {self.mix} {self.cluster} "
            f"load {self.load:.0%}"
        )


def design(models: list[str]) -> list[StudyCase]:
    """12 cases per model (see the module docstring)."""
    cases = []
    for m, model in enumerate(models):
        for s, multiple in enumerate(SLO_MULTIPLES):
            for x, mix in enumerate(SIZE_MIXES):
                cases.append(
                    StudyCase(
                        model,
                        multiple,
                        PERCENTILES[(s * 3 + x + m) % 2],
                        mix,
                        CLUSTERS[(s + 2 * x + m) % 3],
                        LOADS[(s + x + m) % 3],
                    )
                )
    return cases


def bounds_for(cluster: str) -> TuningBounds:
    return CPU_ONLY_BOUNDS if cluster == "cpu-only" else GPU_BOUNDS


def cluster_shape(cluster: str) -> ClusterShape:
    """2 CPU pods x 8 workers, plus one GPU pod unless CPU-only."""
    return ClusterShape(
        cpu_pods=2, cpu_workers_per_pod=8, gpu_pods=0 if cluster == "cpu-only" else 1
    )


def case_profile(case: StudyCase, gpu_profile: Path | None) -> ServiceProfile:
    profile = load_profile(case.model)
    if case.cluster == "gpu-h200":
        if gpu_profile is None:
            raise ValueError("the gpu-h200 cluster needs the path of the H200 profile")
        return with_measured_gpu(profile, gpu_profile)
    return profile


def target_ms(profile: ServiceProfile, multiple: float) -> float:
    """`multiple` x one worker's time for a 1024-item request, in ms."""
    return multiple * profile.cpu_request_s(1024) * 1000


@dataclass
class PreparedCase:
    """A case with its capacity model, grid optimum and starting corner."""

    case: StudyCase
    scenario: Scenario
    capacity: CapacityModel
    bounds: TuningBounds
    optimum: KnobConfig
    optimum_qps: float
    start: KnobConfig

    @property
    def slo(self) -> SloTarget:
        return SloTarget(self.case.percentile, self.scenario.target_ms, WINDOW_S)


class CapacityCache:
    """Capacities and optima per scenario key, in a JSON file that outlives one study run."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._data: dict[str, Any] = {}
        if path is not None and path.is_file():
            self._data = json.loads(path.read_text())

    def load(self, key: str, model: CapacityModel) -> tuple[KnobConfig, float] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        model.remember({KnobConfig(b, t): q for b, t, q in entry["capacities"]})
        b, t = entry["optimum"]
        return KnobConfig(b, t), float(entry["optimum_qps"])

    def store(self, key: str, model: CapacityModel, optimum: KnobConfig, qps: float) -> None:
        self._data[key] = {
            "optimum": [optimum.batch_size, optimum.offload_threshold],
            "optimum_qps": qps,
            "capacities": [
                [c.batch_size, c.offload_threshold, q] for c, q in model.known_capacities().items()
            ],
        }

    def merge(self, other: dict[str, Any]) -> None:
        for key, entry in other.items():
            mine = self._data.setdefault(key, entry)
            known = {(b, t): q for b, t, q in mine["capacities"]}
            known.update({(b, t): q for b, t, q in entry["capacities"]})
            mine["capacities"] = [[b, t, q] for (b, t), q in known.items()]

    def entries(self) -> dict[str, Any]:
        return self._data

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self._data))


def prepare(
    case: StudyCase, gpu_profile: Path | None, cache: CapacityCache | None = None
) -> PreparedCase:
    profile = case_profile(case, gpu_profile)
    scenario = Scenario(
        profile,
        cluster_shape(case.cluster),
        SIZE_DISTRIBUTIONS[case.mix],
        case.percentile,
        target_ms(profile, case.slo_multiple),
    )
    capacity = CapacityModel.build(scenario, seed=0)
    bounds = bounds_for(case.cluster)
    known = cache.load(case.scenario_key, capacity) if cache is not None else None
    optimum, optimum_qps = known or capacity.optimum(bounds)
    start = worst_corner(capacity, bounds)
    if cache is not None:
        cache.store(case.scenario_key, capacity, optimum, optimum_qps)
    return PreparedCase(case, scenario, capacity, bounds, optimum, optimum_qps, start)


def run_case(
    prepared: PreparedCase,
    seed: int,
    intervals: int = 40,
    settings: TuningSettings | None = None,
    latency_noise: float = 0.10,
    utilization_noise: float = 0.02,
    window_queries: int = 20000,
) -> tuple[TuningRun, RunScore]:
    """One seeded run from the worst corner at the case's load, scored against the optimum."""
    service = SimulatedService(
        prepared.scenario,
        prepared.case.load * prepared.optimum_qps,
        window_queries=window_queries,
        latency_noise=latency_noise,
        utilization_noise=utilization_noise,
    )
    slo = prepared.slo
    run = run_tuner(
        service, prepared.start, prepared.bounds, slo, settings or TuningSettings(), intervals, seed
    )
    score = evaluate_run(
        run,
        prepared.capacity,
        prepared.bounds,
        slo,
        optimum=(prepared.optimum, prepared.optimum_qps),
    )
    return run, score


def floor_met(score: RunScore, decisions: int = 15) -> bool:
    """>= 95% of the optimum's capacity within `decisions`, held to the end, and never more than
    2 intervals over target in a row after converging."""
    return (
        score.reached_at is not None
        and score.reached_at <= decisions
        and score.final_ratio >= 0.95
        and score.longest_violation_after_converging <= 2
    )
