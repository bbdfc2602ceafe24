"""What the search minimises: the share of a config's capacity the current load uses.

DeepRecSched maximised capacity (the highest QPS with p95 within target) by sweeping load. Live
traffic cannot be swept, and at a fixed load the lowest p95 is a poor stand-in: at moderate load it
prefers small batches (latency from parallelism) over efficient ones, and it is blind to a GPU pool
melting down under the 2-3% largest queries, which sit beyond p95. On the simulator, over the 8
models x 2 SLOs and loads of 50-90% of the optimum, the lowest-p95 config has as little as 29% of
the optimum's capacity (see docs/benchmarks/tuner.md).

The busiest pool's utilisation (compute seconds per worker-second, read from counters, so much less
noisy than a quantile) measures throughput headroom directly, and latency close to the target
measures the headroom the SLO leaves. `capacity_use` combines them:

    use = busiest-pool utilisation
          * (1 + max(0, pXX / target - latency_headroom)) ** latency_penalty
          * (1 + rejected_penalty * rejected fraction)

so a config wins by freeing workers as long as its tail latency stays under 80% of the target, and
loses fast once latency eats into that margin. On the simulated grid this picks the capacity
optimum at every load tried (50-90% of the optimum's capacity), and every config within 5% of the
minimum has >= 95% of the optimum's capacity. The product keeps comparisons relative, as the noise
band is. An overloaded pool (utilisation, i.e. work offered per worker-second, of 1 or more)
counts its latency at the cap `overload_latency_ratio` once its latency is over the target too,
since the p95 of an overloaded window only tells how long queues have been growing: overloaded
configs rank below every config that keeps up, and among themselves by how far over capacity they
are. A pool at or just above 100% whose latency is still within target is not treated so: near
saturation (90% of the optimum's load) 2% noise on a utilisation of 0.99 would otherwise turn a
good config into an overloaded one, a jump of four orders of magnitude on one noisy window.
Without utilisation (a source that lacks it) the latency ratio alone is used.

Utilisation is a fair measure of headroom for a pool of many workers, whose queues stay short
until it is nearly saturated, not for a GPU pool of one server, whose queueing delay grows as
rho / (1 - rho) from the start. That matters where the GPU pool's queries set the tracked
percentile (it serves more than the tail's share of the queries, over 1% for p99, and its p95 is
above the CPU pool's): there `gpu_queueing_use` counts the GPU pool at the utilisation it would
reach at the load where that percentile, its queueing part growing as rho / (1 - rho), meets the
target, if that is higher (issue 15: WnD 1x p99 production, one speedup-table GPU at 50% load,
settled on T = 512 at 91% of the optimum, its GPU pool 46% busy against the optimum's CPU pool
at 48%). The term is left out where it cannot apply: a GPU pool serving fewer queries than the
tail's share cannot move the percentile alone (with the GPU's p95 in place of the tracked
percentile and no such condition, the term moved NCF 1x p95 heavy to 83%), and where the
percentile is about the GPU's service time (DIN 1x p99 production: its 1024-item queries take
120 ms on that GPU) there is no queueing to extrapolate.
"""

from __future__ import annotations

import math
from dataclasses import replace

from recsched_operator.tuner.observation import Observation
from recsched_operator.tuner.settings import SloTarget, TuningSettings


def busiest_utilization(observation: Observation) -> float | None:
    known = [u for u in (observation.cpu_utilization, observation.gpu_utilization) if u is not None]
    return max(known) if known else None


def throughput_use(observation: Observation) -> float | None:
    """Busiest pool's utilisation, plus every other pool's overload beyond 1.0.

    Equal to the busiest utilisation unless two pools are overloaded at once (a bad corner such
    as B = 1 with T = 32); then relieving the second pool counts too, instead of being invisible
    behind the first.
    """
    known = [u for u in (observation.cpu_utilization, observation.gpu_utilization) if u is not None]
    if not known:
        return None
    busiest = max(known)
    return busiest + sum(max(0.0, u - 1.0) for u in known) - max(0.0, busiest - 1.0)


def gpu_queueing_use(
    observation: Observation, slo: SloTarget, settings: TuningSettings
) -> float | None:
    """The GPU pool's utilisation at the load where the tracked percentile would meet the target,
    scaled back to this load; None where the term does not apply (see the module docstring).

    The GPU pool is taken as one server: its mean service time is S = u / offloaded QPS, and the
    percentile's queueing part, L - S (L discounted by `gpu_queueing_margin` against noise),
    grows as rho / (1 - rho). Solving S + (L - S) (1 - u) / u * x / (1 - x) = target for the
    utilisation x where the target breaks, the pool uses u / x of its latency-bounded capacity.
    A service time already at the target counts as ten times saturated. (Utilisation is per
    GPU worker, so with n GPU servers the service time is n times this estimate and the queue
    shorter than read: the term then errs towards the CPU pool.)
    """
    utilization, qps = observation.gpu_utilization, observation.qps
    offloaded = observation.offloaded_fraction or 0.0
    latency = observation.latency_ms(slo.percentile)
    if utilization is None or latency is None or not qps or not 0.0 < utilization < 1.0:
        return None
    if offloaded <= 1.0 - slo.percentile / 100.0:
        return None
    cpu_p95, gpu_p95 = observation.cpu_p95_ms, observation.gpu_p95_ms
    if cpu_p95 is not None and gpu_p95 is not None and gpu_p95 <= cpu_p95:
        return None
    service_ms = 1000.0 * utilization / (qps * offloaded)
    queueing_ms = latency / (1.0 + settings.gpu_queueing_margin) - service_ms
    if queueing_ms <= 0.0:
        return None
    slack_ms = slo.target_ms - service_ms
    if slack_ms <= 0.0:
        return 10.0
    growth_ms = queueing_ms * (1.0 - utilization) / utilization
    return utilization * (growth_ms + slack_ms) / slack_ms


def capacity_use(
    observation: Observation, slo: SloTarget, settings: TuningSettings
) -> float | None:
    """Lower is better; about 1.0 at the load where the config would stop meeting the SLO."""
    latency = observation.latency_ms(slo.percentile)
    if latency is None:
        return None
    latency_ratio = latency / slo.target_ms
    queueing = gpu_queueing_use(observation, slo, settings)
    if queueing is not None and queueing > (observation.gpu_utilization or 0.0):
        observation = replace(observation, gpu_utilization=queueing)
    throughput = throughput_use(observation)
    if throughput is None:
        return latency_ratio
    rejected = observation.rejected_fraction or 0.0
    if throughput >= 1.0 and latency_ratio > 1.0:
        latency_ratio = settings.overload_latency_ratio
    excess = min(
        max(0.0, latency_ratio - settings.latency_headroom), settings.overload_latency_ratio
    )
    latency_factor: float = math.pow(1.0 + excess, settings.latency_penalty)
    return throughput * latency_factor * (1.0 + settings.rejected_penalty * rejected)


def describe_use(observation: Observation, slo: SloTarget, use: float) -> str:
    """'p95 31.0 ms, busiest pool 64%, capacity use 0.64' for decision reasons."""
    latency = observation.latency_ms(slo.percentile)
    parts = [f"p{slo.percentile} {latency:.1f} ms" if latency is not None else "no latency"]
    busiest = busiest_utilization(observation)
    if busiest is not None:
        parts.append(f"busiest pool {busiest:.0%}")
    parts.append(f"capacity use {use:.2f}")
    return ", ".join(parts)
