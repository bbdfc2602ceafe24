"""Closed-form queueing results the load test is checked against (test helper).

M/M/1: the sojourn time (wait + service) is exponential with rate mu - lambda, so its q-quantile is
-ln(1 - q) / (mu - lambda) and the largest rate whose p95 <= tau is mu - ln(20) / tau.
M/D/1: Erlang's waiting-time distribution (Crommelin 1932), with x_k = lambda (k D - t),
    P(W <= t) = (1 - rho) * sum_{k=0}^{floor(t/D)} x_k^k / k! * exp(-x_k),
an alternating sum that is accurate in float64 for t/D up to a few tens; sojourn = W + D.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def mm1_sojourn_quantile_s(rate_qps: float, service_rate_qps: float, quantile: float) -> float:
    assert rate_qps < service_rate_qps
    return -math.log(1.0 - quantile) / (service_rate_qps - rate_qps)


def mm1_capacity_qps(service_rate_qps: float, target_s: float, quantile: float = 0.95) -> float:
    return service_rate_qps + math.log(1.0 - quantile) / target_s


def md1_waiting_cdf(wait_s: float, rate_qps: float, service_s: float) -> float:
    rho = rate_qps * service_s
    assert rho < 1 and wait_s >= 0
    total = 0.0
    for k in range(int(wait_s / service_s) + 1):
        x = rate_qps * (k * service_s - wait_s)
        total += x**k / math.factorial(k) * math.exp(-x)
    return (1.0 - rho) * total


def md1_sojourn_quantile_s(rate_qps: float, service_s: float, quantile: float) -> float:
    if md1_waiting_cdf(0.0, rate_qps, service_s) >= quantile:
        return service_s
    low, high = 0.0, service_s
    while md1_waiting_cdf(high, rate_qps, service_s) < quantile:
        high *= 2
    for _ in range(60):
        middle = 0.5 * (low + high)
        if md1_waiting_cdf(middle, rate_qps, service_s) < quantile:
            low = middle
        else:
            high = middle
    return high + service_s


def erlang_c(rate_qps: float, service_rate_qps: float, servers: int) -> float:
    """Probability that an arrival waits in an M/M/c queue."""
    offered = rate_qps / service_rate_qps
    assert offered < servers
    top = offered**servers / math.factorial(servers) * servers / (servers - offered)
    return top / (sum(offered**k / math.factorial(k) for k in range(servers)) + top)


def mmc_sojourn_survival(
    t_s: float, rate_qps: float, service_rate_qps: float, servers: int
) -> float:
    """P(wait + service > t) in M/M/c: wait is 0 w.p. 1-C, else Exp(c mu - lambda)."""
    mu, theta = service_rate_qps, servers * service_rate_qps - rate_qps
    waiting = erlang_c(rate_qps, mu, servers)
    if abs(theta - mu) < 1e-12:
        both = (1.0 + mu * t_s) * math.exp(-mu * t_s)
    else:
        both = (theta * math.exp(-mu * t_s) - mu * math.exp(-theta * t_s)) / (theta - mu)
    return (1.0 - waiting) * math.exp(-mu * t_s) + waiting * both


def mmc_sojourn_quantile_s(
    rate_qps: float, service_rate_qps: float, servers: int, quantile: float
) -> float:
    low, high = 0.0, 1.0 / service_rate_qps
    while mmc_sojourn_survival(high, rate_qps, service_rate_qps, servers) > 1.0 - quantile:
        high *= 2
    for _ in range(60):
        middle = 0.5 * (low + high)
        if mmc_sojourn_survival(middle, rate_qps, service_rate_qps, servers) > 1.0 - quantile:
            low = middle
        else:
            high = middle
    return high


def capacity_qps(p95_s_at: Callable[[float], float], target_s: float, max_rate_qps: float) -> float:
    """The largest rate whose p95 <= target, by bisection on a monotone p95(rate)."""
    low, high = 0.0, max_rate_qps * (1 - 1e-9)
    for _ in range(60):
        middle = 0.5 * (low + high)
        if p95_s_at(middle) <= target_s:
            low = middle
        else:
            high = middle
    return low
