"""A workload = arrival schedule + query sizes + encoded bodies, built before a run (pure).

`WorkloadSpec` is what the CLI parses; `build_workload` turns it, a model signature and a seeded
generator into everything the driver needs, so a run is reproducible from (spec, seed) alone.
Capacity trials reuse one spec with a different constant rate and seed per trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from recsched_loadtest.arrivals import (
    RateProfile,
    ScheduleArray,
    constant_rate,
    constant_schedule_s,
    poisson_schedule_s,
)
from recsched_loadtest.encoding import PreparedQueries, prepare_queries
from recsched_loadtest.errors import SpecError
from recsched_loadtest.indices import IndexDistribution
from recsched_loadtest.signature import ModelSignature
from recsched_loadtest.sizes import PRODUCTION_LIKE, SizeDistribution, draw_query_sizes

ARRIVAL_KINDS = ("poisson", "constant", "trace")


@dataclass(frozen=True)
class WorkloadSpec:
    profile: RateProfile | None = None  # for poisson and constant arrivals
    arrivals: str = "poisson"
    trace_s: tuple[float, ...] | None = None  # offsets for trace replay
    sizes: SizeDistribution = PRODUCTION_LIKE
    indices: IndexDistribution = field(default_factory=IndexDistribution)
    protocol: str = "binary"
    seed: int = 1
    pool_items: int = 8192
    prebuild_budget_bytes: int = 256 << 20

    def at_constant_rate(self, rate_qps: float, duration_s: float, seed: int) -> WorkloadSpec:
        """The same workload at another rate (keeps poisson/constant arrivals), for trials."""
        arrivals = self.arrivals if self.arrivals != "trace" else "poisson"
        return replace(
            self,
            profile=constant_rate(rate_qps, duration_s),
            arrivals=arrivals,
            trace_s=None,
            seed=seed,
        )

    def describe(self) -> str:
        if self.arrivals == "trace":
            load = f"trace ({len(self.trace_s or ())} arrivals)"
        else:
            load = f"{self.arrivals} {self.profile.describe() if self.profile else '?'} QPS:s"
        return (
            f"{load}, sizes {self.sizes.describe()}, indices {self.indices.describe()}, "
            f"{self.protocol}, seed {self.seed}"
        )


@dataclass(frozen=True)
class Workload:
    scheduled_s: ScheduleArray
    queries: PreparedQueries
    offered_qps: float
    duration_s: float


def build_schedule(
    spec: WorkloadSpec, rng: np.random.Generator
) -> tuple[ScheduleArray, float, float]:
    """(offsets, nominal offered QPS, duration in s)."""
    if spec.arrivals == "trace":
        if spec.trace_s is None or len(spec.trace_s) == 0:
            raise SpecError("trace arrivals need a trace")
        scheduled = np.asarray(spec.trace_s, dtype=np.float64)
        # The window ends one mean gap after the last arrival, so the last query counts.
        duration_s = float(scheduled[-1]) * len(scheduled) / max(len(scheduled) - 1, 1)
        duration_s = max(duration_s, 1e-3)
        return scheduled, len(scheduled) / duration_s, duration_s
    if spec.profile is None:
        raise SpecError(f"{spec.arrivals} arrivals need a rate profile")
    if spec.arrivals == "poisson":
        scheduled = poisson_schedule_s(rng, spec.profile)
    elif spec.arrivals == "constant":
        scheduled = constant_schedule_s(spec.profile)
    else:
        raise SpecError(f"arrivals must be one of {ARRIVAL_KINDS}, got {spec.arrivals!r}")
    return scheduled, spec.profile.mean_rate_qps, spec.profile.duration_s


def build_workload(spec: WorkloadSpec, signature: ModelSignature) -> Workload:
    # Independent streams per concern, so changing e.g. the index law keeps the same arrivals.
    arrival_rng, size_rng, tensor_rng = (
        np.random.default_rng(seed) for seed in np.random.SeedSequence(spec.seed).spawn(3)
    )
    scheduled, offered_qps, duration_s = build_schedule(spec, arrival_rng)
    sizes = draw_query_sizes(spec.sizes, size_rng, len(scheduled), signature.max_query_items)
    queries = prepare_queries(
        tensor_rng,
        signature,
        sizes,
        spec.indices,
        protocol=spec.protocol,
        pool_items=spec.pool_items,
        prebuild_budget_bytes=spec.prebuild_budget_bytes,
    )
    return Workload(scheduled, queries, offered_qps, duration_s)
