"""Discrete-event model of router + CPU pool + GPU pool for one configuration and one load.

Model (DESIGN.md section 1, DeepRecInfra section 2.3 of the facts file):

* Queries arrive Poisson at `qps` with sizes from a `SizeDistribution`. The router sends a query
  of N >= T items whole to the GPU pool and the rest to the CPU pool, round-robin over each pool's
  pods (the router balances by count, not by load).
* A CPU pod splits a query into ceil(N/B) requests (the last holds the remainder) and appends them
  to one FIFO shared by its W single-threaded workers; a query is done when its last request is.
* A GPU pod runs one whole query at a time, FIFO.

Every queue is FIFO, so instead of a global event heap each pod keeps its workers' next-free
times in a sorted list (a heap that is also sorted) and every request starts at max(arrival,
earliest free worker): the event order of FIFO multi-server queues, exact for this model.
Requests of one query are identical except the last, which lets a pod hand them out in closed
form (`_serve_split_query`) rather than one heap operation each; a query of 1024 one-item
requests costs a few list operations, not 1024.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recsched_operator.tuner.simulation.profiles import ServiceProfile
from recsched_operator.tuner.simulation.workload import SizeDistribution, poisson_arrivals_s


@dataclass(frozen=True)
class ClusterShape:
    """Pools being simulated and the fixed costs the model adds to the profile's compute times.

    `request_overhead_s` is paid per CPU request (dispatch to a worker, slicing the inputs);
    `query_overhead_s` per query end to end (HTTP, decoding, routing), both in seconds.
    `query_overhead_per_item_s` adds that much latency per item of a query on top of
    `query_overhead_s` (a body's transfer, decoding and encoding grow with its size) without
    occupying a worker; 0 by default (issue 13 section 2 measures it on a real pod).
    """

    cpu_pods: int = 2
    cpu_workers_per_pod: int = 8
    gpu_pods: int = 1
    request_overhead_s: float = 0.0
    query_overhead_s: float = 0.0
    query_overhead_per_item_s: float = 0.0

    def __post_init__(self) -> None:
        if self.cpu_pods < 1 or self.cpu_workers_per_pod < 1 or self.gpu_pods < 0:
            raise ValueError(f"invalid cluster shape {self}")


@dataclass(frozen=True)
class WindowResult:
    """Per-query outcome of one simulated window (warm-up queries already dropped)."""

    offered_qps: float
    duration_s: float
    latency_s: npt.NDArray[np.float64]
    queue_wait_s: npt.NDArray[np.float64]
    on_gpu: npt.NDArray[np.bool_]
    items: npt.NDArray[np.int64]
    busy_s: npt.NDArray[np.float64]
    cluster: ClusterShape

    def utilization(self, pool: str) -> float | None:
        """Busy worker-seconds of `pool` per worker-second available over the window (the load
        offered to the pool, which may exceed 1 when the pool cannot keep up)."""
        servers = (
            self.cluster.gpu_pods
            if pool == "gpu"
            else self.cluster.cpu_pods * self.cluster.cpu_workers_per_pod
        )
        if servers == 0 or self.duration_s <= 0:
            return None
        mask = self.on_gpu if pool == "gpu" else ~self.on_gpu
        return float(self.busy_s[mask].sum()) / (servers * self.duration_s)

    @property
    def queries(self) -> int:
        return int(self.latency_s.size)

    @property
    def measured_qps(self) -> float:
        return self.queries / self.duration_s if self.duration_s > 0 else 0.0

    def percentile_ms(self, percentile: float, pool: str | None = None) -> float | None:
        """Latency percentile in ms over all queries, or those of `pool` ("cpu" or "gpu")."""
        values = self.latency_s
        if pool == "gpu":
            values = values[self.on_gpu]
        elif pool == "cpu":
            values = values[~self.on_gpu]
        if values.size == 0:
            return None
        return float(np.percentile(values, percentile)) * 1000.0


def _serve_split_query(
    free_s: list[float], arrival_s: float, full_requests: int, full_s: float, last_s: float
) -> tuple[float, float]:
    """Queue `full_requests` requests of `full_s` then one of `last_s` on a pod's workers.

    `free_s` holds the workers' next-free times in ascending order and is updated in place.
    Returns (start of the first request, end of the last one to finish).
    """
    workers = len(free_s)
    level = [t if t > arrival_s else arrival_s for t in free_s]
    first_start = level[0]
    done = arrival_s
    remaining = full_requests
    # Levelling: while some worker is free a full request earlier than the latest one, the
    # earliest takes every request that would start before the next worker frees up.
    while remaining and level[-1] - level[0] >= full_s:
        start = level.pop(0)
        count = min(remaining, int((level[0] - start) // full_s) + 1)
        remaining -= count
        end = start + count * full_s
        done = max(done, end)
        bisect.insort(level, end)
    # Once all free times lie within one request of each other, requests go round-robin in
    # free-time order and their start times never decrease, so the last one ends last.
    if remaining:
        rounds, extra = divmod(remaining, workers)
        last = remaining - 1
        done = max(done, level[last % workers] + (last // workers + 1) * full_s)
        level = [t + (rounds + (1 if i < extra else 0)) * full_s for i, t in enumerate(level)]
        level.sort()
    end = level[0] + last_s
    done = max(done, end)
    level.pop(0)
    bisect.insort(level, end)
    free_s[:] = level
    return first_start, done


def simulate_window(
    profile: ServiceProfile,
    batch_size: int,
    offload_threshold: int,
    cluster: ClusterShape,
    sizes: SizeDistribution,
    qps: float,
    queries: int,
    rng: np.random.Generator,
    warmup_fraction: float = 0.1,
) -> WindowResult:
    """Simulate `queries` arrivals at `qps` from an empty system, dropping the first
    `warmup_fraction` of them from the result."""
    arrivals = poisson_arrivals_s(rng, qps, queries)
    items = sizes.draw(rng, queries)
    return simulate_queries(
        profile, batch_size, offload_threshold, cluster, arrivals, items, qps, warmup_fraction
    )


def simulate_queries(
    profile: ServiceProfile,
    batch_size: int,
    offload_threshold: int,
    cluster: ClusterShape,
    arrivals_s: npt.NDArray[np.float64],
    items: npt.NDArray[np.int64],
    offered_qps: float,
    warmup_fraction: float = 0.1,
) -> WindowResult:
    """Simulate given arrivals and sizes (common random numbers across configs and loads)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cpu_table = profile.cpu_table_s
    gpu_table = profile.gpu_table_s
    max_items = len(cpu_table) - 1
    request_overhead = cluster.request_overhead_s
    item_overhead = cluster.query_overhead_per_item_s
    full_s = cpu_table[min(batch_size, max_items)] + request_overhead
    cpu_free: list[list[float]] = [
        [0.0] * cluster.cpu_workers_per_pod for _ in range(cluster.cpu_pods)
    ]
    gpu_free = [0.0] * cluster.gpu_pods
    use_gpu = cluster.gpu_pods > 0
    count = len(arrivals_s)
    latency = np.empty(count)
    wait = np.empty(count)
    on_gpu = np.zeros(count, dtype=bool)
    busy = np.empty(count)
    next_cpu = 0
    next_gpu = 0
    for index, (arrival, size) in enumerate(zip(arrivals_s.tolist(), items.tolist(), strict=True)):
        if use_gpu and size >= offload_threshold:
            pod = next_gpu
            next_gpu = (next_gpu + 1) % cluster.gpu_pods
            start = max(gpu_free[pod], arrival)
            busy[index] = gpu_table[min(size, max_items)]
            done = start + busy[index]
            gpu_free[pod] = done
            on_gpu[index] = True
        else:
            free = cpu_free[next_cpu]
            next_cpu = (next_cpu + 1) % cluster.cpu_pods
            requests = math.ceil(size / batch_size)
            rest = size - (requests - 1) * batch_size
            last_s = cpu_table[min(rest, max_items)] + request_overhead
            busy[index] = (requests - 1) * full_s + last_s
            if requests == 1:
                start = max(free.pop(0), arrival)
                done = start + last_s
                bisect.insort(free, done)
            else:
                start, done = _serve_split_query(free, arrival, requests - 1, full_s, last_s)
        latency[index] = done - arrival + cluster.query_overhead_s + size * item_overhead
        wait[index] = start - arrival
    skip = int(count * warmup_fraction)
    duration = float(arrivals_s[-1] - arrivals_s[skip]) if count > skip + 1 else 0.0
    return WindowResult(
        offered_qps=offered_qps,
        duration_s=duration,
        latency_s=latency[skip:],
        queue_wait_s=wait[skip:],
        on_gpu=on_gpu[skip:],
        items=items[skip:],
        busy_s=busy[skip:],
        cluster=cluster,
    )
