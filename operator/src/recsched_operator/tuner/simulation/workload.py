"""Query-size distributions and arrival times for the simulator.

DeepRecInfra draws query sizes (items to rank) per query and clips them to [1, 1024]. The
paper's scripts use a narrow lognormal(5.1, 0.2); production traffic is heavier-tailed and its
file was never released, so a two-component lognormal mixture stands in for it (`heavy`): most
queries are small, and a fifth of them come from a wide component that reaches the 1024 cap.
Arrivals are Poisson with exponential gaps drawn fresh per query (fixing the repo's
integer-millisecond gaps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recsched_operator.tuner.simulation.profiles import MAX_QUERY_ITEMS


@dataclass(frozen=True)
class LognormalComponent:
    """One lognormal component: numpy's (mean, sigma) of the underlying normal, and its weight."""

    mu: float
    sigma: float
    weight: float = 1.0


@dataclass(frozen=True)
class SizeDistribution:
    """A mixture of lognormals, rounded and clipped to [1, max_items]."""

    name: str
    components: tuple[LognormalComponent, ...]
    max_items: int = MAX_QUERY_ITEMS

    def draw(self, rng: np.random.Generator, count: int) -> npt.NDArray[np.int64]:
        weights = np.array([c.weight for c in self.components], dtype=np.float64)
        which = rng.choice(len(self.components), size=count, p=weights / weights.sum())
        mu = np.array([c.mu for c in self.components])[which]
        sigma = np.array([c.sigma for c in self.components])[which]
        raw = rng.lognormal(mean=0.0, sigma=1.0, size=count) ** sigma * np.exp(mu)
        sizes: npt.NDArray[np.int64] = np.clip(np.rint(raw), 1, self.max_items).astype(np.int64)
        return sizes

    def scaled(self, factor: float) -> SizeDistribution:
        """The same shape with every size multiplied by `factor` (a size-mix drift)."""
        shift = float(np.log(factor))
        return SizeDistribution(
            name=f"{self.name}x{factor:g}",
            components=tuple(
                LognormalComponent(c.mu + shift, c.sigma, c.weight) for c in self.components
            ),
            max_items=self.max_items,
        )


PAPER_LOGNORMAL = SizeDistribution("lognormal", (LognormalComponent(5.1, 0.2),))
"""lognormal(5.1, 0.2) from run_loadGenerator.sh / run_Scheduler.sh: median 164, p99 261."""

HEAVY_TAILED = SizeDistribution(
    "heavy",
    (LognormalComponent(4.0, 0.8, 0.8), LognormalComponent(6.0, 0.8, 0.2)),
)
"""Mean 156 items like the paper's (167) but median 70, p95 ~690, 2.5% of queries at the cap."""

PRODUCTION_LIKE = SizeDistribution("production", (LognormalComponent(5.1, 0.8),))
"""The load generator's default (`recsched_loadtest.sizes`): the paper's median, sigma 0.8."""

SIZE_DISTRIBUTIONS: dict[str, SizeDistribution] = {
    d.name: d for d in (PAPER_LOGNORMAL, HEAVY_TAILED, PRODUCTION_LIKE)
}


def poisson_arrivals_s(rng: np.random.Generator, qps: float, count: int) -> npt.NDArray[np.float64]:
    """Arrival times (seconds from 0) of `count` queries at `qps` with exponential gaps."""
    if qps <= 0:
        raise ValueError(f"qps must be positive, got {qps}")
    return np.cumsum(rng.exponential(1.0 / qps, size=count))
