"""Latency-bounded throughput (capacity) of a configuration and the grid optimum.

Capacity is DeepRecSched's metric: the highest offered QPS whose tail latency stays within the
target. It is found by bisection on QPS with common random numbers: one fixed sequence of
unit-rate arrival gaps and query sizes, rescaled per QPS, so that p95 is a smooth, nearly monotone
function of QPS and two configurations are compared on the same traffic. The upper end of the
bisection is the work bound (each pool's worker-seconds per second over the work per query), so
no probe is wasted beyond saturation. Windows are finite, so near saturation p95 is that of a
window of `queries` queries from an empty system, the same convention for every config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from recsched_operator.tuner.knobs import KnobConfig, TuningBounds
from recsched_operator.tuner.simulation.engine import ClusterShape, WindowResult, simulate_queries
from recsched_operator.tuner.simulation.profiles import ServiceProfile
from recsched_operator.tuner.simulation.workload import SizeDistribution


@dataclass(frozen=True)
class Scenario:
    """A model on a cluster under a query-size mix, judged by `percentile` <= `target_ms`."""

    profile: ServiceProfile
    cluster: ClusterShape
    sizes: SizeDistribution
    percentile: int
    target_ms: float


@dataclass
class Traffic:
    """Common random numbers: unit-rate arrival times and sizes, shared by every evaluation."""

    unit_arrivals: npt.NDArray[np.float64]
    items: npt.NDArray[np.int64]

    @classmethod
    def draw(cls, sizes: SizeDistribution, queries: int, seed: int) -> Traffic:
        rng = np.random.default_rng(seed)
        return cls(np.cumsum(rng.exponential(1.0, size=queries)), sizes.draw(rng, queries))


def work_bound_qps(scenario: Scenario, config: KnobConfig, items: npt.NDArray[np.int64]) -> float:
    """QPS at which the busier pool's workers would be busy 100% of the time."""
    profile, cluster = scenario.profile, scenario.cluster
    to_gpu = (
        (items >= config.offload_threshold)
        if cluster.gpu_pods > 0
        else np.zeros_like(items, dtype=bool)
    )
    cpu_work = profile.cpu_query_work_s(items[~to_gpu], config.batch_size)
    requests = np.ceil(items[~to_gpu] / config.batch_size)
    cpu_per_query = (cpu_work.sum() + requests.sum() * cluster.request_overhead_s) / items.size
    gpu_table = np.asarray(profile.gpu_table_s)
    gpu_per_query = gpu_table[items[to_gpu]].sum() / items.size
    bounds = (
        [cluster.cpu_pods * cluster.cpu_workers_per_pod / cpu_per_query]
        if cpu_per_query > 0
        else []
    )
    if gpu_per_query > 0:
        bounds.append(cluster.gpu_pods / gpu_per_query)
    return min(bounds) if bounds else float("inf")


@dataclass
class CapacityModel:
    """Evaluates configs of one scenario on fixed traffic, caching what it computed."""

    scenario: Scenario
    traffic: Traffic
    iterations: int = 10
    _capacity: dict[KnobConfig, float] = field(default_factory=dict)

    @classmethod
    def build(cls, scenario: Scenario, queries: int = 5000, seed: int = 0) -> CapacityModel:
        return cls(scenario, Traffic.draw(scenario.sizes, queries, seed))

    def window(self, config: KnobConfig, qps: float) -> WindowResult:
        return simulate_queries(
            self.scenario.profile,
            config.batch_size,
            config.offload_threshold,
            self.scenario.cluster,
            self.traffic.unit_arrivals / qps,
            self.traffic.items,
            qps,
        )

    def latency_ms(self, config: KnobConfig, qps: float) -> float:
        value = self.window(config, qps).percentile_ms(self.scenario.percentile)
        return float("inf") if value is None else value

    def meets_target(self, config: KnobConfig, qps: float) -> bool:
        return self.latency_ms(config, qps) <= self.scenario.target_ms

    def capacity_qps(self, config: KnobConfig) -> float:
        """Highest QPS with the tracked percentile within target (0 if even light load fails)."""
        if config not in self._capacity:
            low, high = 0.0, work_bound_qps(self.scenario, config, self.traffic.items)
            for _ in range(self.iterations):
                middle = (low + high) / 2
                if self.meets_target(config, middle):
                    low = middle
                else:
                    high = middle
            self._capacity[config] = low
        return self._capacity[config]

    def optimum(self, bounds: TuningBounds) -> tuple[KnobConfig, float]:
        """The grid config of highest capacity. Configs whose work bound or whose p95 at the best
        capacity so far rules them out are skipped without a bisection."""
        configs = bounds.configs()
        bound = {c: work_bound_qps(self.scenario, c, self.traffic.items) for c in configs}
        best, best_qps = configs[0], -1.0
        for config in sorted(configs, key=lambda c: -bound[c]):
            if bound[config] <= best_qps:
                break
            if best_qps > 0 and not self.meets_target(config, best_qps):
                continue
            capacity = self.capacity_qps(config)
            if capacity > best_qps:
                best, best_qps = config, capacity
        return best, best_qps

    def known_capacities(self) -> dict[KnobConfig, float]:
        """Capacities bisected so far (a copy), to store and hand to `remember` later."""
        return dict(self._capacity)

    def remember(self, capacities: dict[KnobConfig, float]) -> None:
        """Take capacities bisected earlier on the same scenario and traffic (a study's cache),
        so they are not bisected again."""
        self._capacity.update(capacities)

    def latency_landscape(self, bounds: TuningBounds, qps: float) -> dict[KnobConfig, float]:
        """Tracked percentile (ms) of every grid config at one offered load."""
        return {config: self.latency_ms(config, qps) for config in bounds.configs()}
