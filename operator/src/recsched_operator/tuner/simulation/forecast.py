"""The simulator on live traffic: recommend mode's advice, with predicted latency and capacity.

In `recommend` mode nothing is applied, so the online search cannot try a neighbour and measure
it. What the operator can do instead is what the paper did offline, on the traffic it sees now:
calibrate the simulator on the window just observed, then rank every config of the grid by
simulated capacity (the highest QPS whose tail stays within the SLO, DeepRecSched's metric).

Calibration from one observation of the served config:

* **Sizes**: a lognormal with the observed mean and p95 query size (clipped to 1..1024 as the
  pods clip), the shape the paper's load generator draws.
* **Speed**: the shipped profile's times scaled by the observed CPU compute per query (the pods'
  compute histogram: utilisation x workers / QPS) over the profile's own for the served batch
  size on those sizes. This follows what a profile measured elsewhere or earlier cannot know:
  the machine's speed, which drifts on shared cores, and the load's effect on it (a worker that
  idles between requests computes 4-13% slower: docs/benchmarks/tuner.md, where the simulator
  is within 15% of the measured p95 at 6 of 6 points given the speed of the run predicted).
  The GPU pool keeps the profile's times.
* **Fixed latency**: what the observed tail exceeds the calibrated simulation of the served
  config at the observed load, added to every query (HTTP, decoding, routing; never negative).

The result says what it rests on, so a reader can judge it: the factor, the fixed latency and the
fitted sizes are part of every forecast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from recsched_operator.tuner.knobs import KnobConfig, TuningBounds
from recsched_operator.tuner.observation import Observation
from recsched_operator.tuner.settings import SloTarget
from recsched_operator.tuner.simulation.capacity import CapacityModel, Scenario, Traffic
from recsched_operator.tuner.simulation.engine import ClusterShape
from recsched_operator.tuner.simulation.profiles import ServiceProfile
from recsched_operator.tuner.simulation.workload import LognormalComponent, SizeDistribution

_Z95 = 1.6448536269514722  # standard normal 95th percentile
# A recommendation must promise this much more capacity than the served config to be worth a change.
MIN_CAPACITY_GAIN = 0.05


class NoForecast(ValueError):
    """The observation cannot calibrate the simulator; the message says what is missing."""


@dataclass(frozen=True)
class Calibration:
    """What a forecast rests on: the speed factor on the profile's CPU times, the fixed latency
    per query, and the fitted query sizes (lognormal mu and sigma of the underlying normal)."""

    speed_factor: float
    fixed_latency_ms: float
    size_mu: float
    size_sigma: float

    def describe(self) -> str:
        median = math.exp(self.size_mu)
        return (
            f"profile x {self.speed_factor:.2f} (observed compute), +{self.fixed_latency_ms:.1f} "
            f"ms per query, sizes lognormal(median {median:.0f}, sigma {self.size_sigma:.2f})"
        )


@dataclass(frozen=True)
class ConfigForecast:
    """One config on the calibrated simulator: its tail at the observed load and its capacity."""

    config: KnobConfig
    tail_ms: float
    capacity_qps: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.config.to_dict(),
            "predictedMs": round(float(self.tail_ms), 2) if math.isfinite(self.tail_ms) else None,
            "capacityQps": round(float(self.capacity_qps), 2),
        }


@dataclass(frozen=True)
class Advice:
    """The served config and the simulator's best, both forecast at the observed load."""

    served: ConfigForecast
    best: ConfigForecast
    calibration: Calibration
    percentile: int
    qps: float

    @property
    def config(self) -> KnobConfig:
        """The recommendation: the best config when it promises enough more capacity."""
        gain = self.best.capacity_qps > self.served.capacity_qps * (1 + MIN_CAPACITY_GAIN)
        return self.best.config if gain else self.served.config

    def describe(self) -> str:
        p = f"p{self.percentile}"
        served, best = self.served, self.best
        head = (
            f"simulator at {self.qps:.1f} qps: serving {served.config.describe()} "
            f"({p} {_ms(served.tail_ms)}, capacity {served.capacity_qps:.1f} qps)"
        )
        if self.config == served.config:
            verdict = (
                f"; the grid's best {best.config.describe()} promises "
                f"{best.capacity_qps:.1f} qps, less than {MIN_CAPACITY_GAIN:.0%} more: no change"
            )
        else:
            verdict = (
                f"; {best.config.describe()} promises {p} {_ms(best.tail_ms)}, "
                f"capacity {best.capacity_qps:.1f} qps"
            )
        return f"{head}{verdict} ({self.calibration.describe()})"

    def to_dict(self) -> dict[str, Any]:
        calibration = self.calibration
        return {
            "percentile": self.percentile,
            "qps": round(float(self.qps), 2),
            "served": self.served.to_dict(),
            "best": self.best.to_dict(),
            "speedFactor": round(calibration.speed_factor, 3),
            "fixedLatencyMs": round(calibration.fixed_latency_ms, 2),
            "sizes": {
                "lognormalMu": round(calibration.size_mu, 3),
                "lognormalSigma": round(calibration.size_sigma, 3),
            },
        }


def fitted_sizes(mean_items: float, p95_items: float | None) -> tuple[float, float]:
    """(mu, sigma) of the lognormal with this mean and 95th percentile; sigma 0 (every query the
    mean's size) when the p95 is unknown or not above the mean."""
    if mean_items <= 0 or not math.isfinite(mean_items):
        raise NoForecast(f"mean query size {mean_items} is not positive")
    gap = 0.0 if p95_items is None or p95_items <= mean_items else math.log(p95_items / mean_items)
    # ln(p95 / mean) = z sigma - sigma^2 / 2: the smaller root; a gap past the curve's top (a p95
    # of over 3.9x the mean) gets the widest lognormal this fit can give, sigma = z.
    sigma = _Z95 - math.sqrt(max(_Z95**2 - 2 * gap, 0.0))
    return math.log(mean_items) - sigma**2 / 2, sigma


def _required(observation: Observation, percentile: int) -> tuple[float, float, float]:
    if observation.error is not None:
        raise NoForecast(observation.error)
    tail_ms = observation.latency_ms(percentile)
    checks = (
        (observation.qps, "query rate"),
        (tail_ms, f"p{percentile}"),
        (observation.mean_query_items, "mean query size"),
    )
    for value, name in checks:
        if value is None or not math.isfinite(value) or value <= 0:
            raise NoForecast(f"no {name} observed")
    assert observation.qps is not None and tail_ms is not None
    assert observation.mean_query_items is not None
    return observation.qps, tail_ms, observation.mean_query_items


def calibrate(
    profile: ServiceProfile,
    cluster: ClusterShape,
    observation: Observation,
    served: KnobConfig,
    slo: SloTarget,
    queries: int = 4000,
    seed: int = 0,
) -> tuple[CapacityModel, Calibration]:
    """The simulator calibrated on one observation of `served` (module docstring)."""
    qps, observed_ms, mean_items = _required(observation, slo.percentile)
    mu, sigma = fitted_sizes(mean_items, observation.p95_query_items)
    sizes = SizeDistribution("observed", (LognormalComponent(mu, sigma),))
    traffic = Traffic.draw(sizes, queries, seed)
    items = traffic.items
    on_cpu = items < served.offload_threshold if cluster.gpu_pods > 0 else np.ones(items.size, bool)
    work_s = float(profile.cpu_query_work_s(items[on_cpu], served.batch_size).sum()) / items.size
    factor = 1.0
    if work_s > 0:
        if observation.cpu_utilization is None or observation.cpu_utilization <= 0:
            raise NoForecast("no CPU pool utilisation observed")
        workers = cluster.cpu_pods * cluster.cpu_workers_per_pod
        factor = observation.cpu_utilization * workers / qps / work_s
    scaled = profile.cpu_scaled(factor)
    bare = CapacityModel(Scenario(scaled, cluster, sizes, slo.percentile, slo.target_ms), traffic)
    fixed_ms = max(observed_ms - bare.latency_ms(served, qps), 0.0)
    with_fixed = replace(cluster, query_overhead_s=cluster.query_overhead_s + fixed_ms / 1000.0)
    model = CapacityModel(
        Scenario(scaled, with_fixed, sizes, slo.percentile, slo.target_ms), traffic
    )
    return model, Calibration(factor, fixed_ms, mu, sigma)


def advise(
    profile: ServiceProfile,
    cluster: ClusterShape,
    observation: Observation,
    served: KnobConfig,
    bounds: TuningBounds,
    slo: SloTarget,
    queries: int = 4000,
    seed: int = 0,
) -> Advice:
    """Forecast the served config and the grid's highest-capacity config at the observed load;
    raises `NoForecast` when the observation cannot calibrate the simulator."""
    model, calibration = calibrate(profile, cluster, observation, served, slo, queries, seed)
    qps = observation.qps
    assert qps is not None
    best, best_qps = model.optimum(bounds)

    def forecast(config: KnobConfig, capacity_qps: float) -> ConfigForecast:
        return ConfigForecast(config, model.latency_ms(config, qps), capacity_qps)

    return Advice(
        served=forecast(served, model.capacity_qps(served)),
        best=forecast(best, best_qps),
        calibration=calibration,
        percentile=slo.percentile,
        qps=qps,
    )


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if math.isfinite(value) else "unbounded"
