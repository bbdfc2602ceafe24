"""The capacity search as a pure state machine: bracketing, bisection, repeats, early stop."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
from loadtest_queueing_theory import capacity_qps, md1_sojourn_quantile_s

from recsched_loadtest.capacity_search import (
    CapacityPolicy,
    CapacitySearch,
    TrialPoint,
    rate_verdict,
    repeat_seed,
    summarize_repeats,
    trial_certainly_fails,
    trial_passes,
    trial_seed,
    trial_window_s,
)
from recsched_loadtest.signature import ModelSignature
from recsched_loadtest.sizes import PRODUCTION_LIKE
from recsched_loadtest.workload import Workload, WorkloadSpec, build_workload


def _point(
    rate_qps: float, p95_ms: float, policy: CapacityPolicy, error_ratio: float = 0.0
) -> TrialPoint:
    return TrialPoint(
        offered_qps=rate_qps,
        achieved_qps=rate_qps,
        p50_ms=p95_ms / 2,
        p95_ms=p95_ms,
        p99_ms=p95_ms * 1.2,
        error_ratio=error_ratio,
        queries=1000,
        passed=trial_passes(p95_ms, error_ratio, 1000, policy),
        stopped_early=False,
    )


def _search(policy: CapacityPolicy, p95_ms_at: object) -> CapacitySearch:
    search = CapacitySearch(policy)
    for _ in range(200):
        rate = search.next_rate_qps()
        if rate is None:
            break
        search.record(_point(rate, p95_ms_at(rate), policy))  # type: ignore[operator]
    return search


def test_noiseless_search_brackets_the_true_capacity_within_tolerance() -> None:
    policy = CapacityPolicy(target_ms=50.0, start_qps=10.0)
    result = _search(policy, lambda rate: 10.0 + 40.0 * rate / 333.0).result()
    assert result.converged
    assert result.lo_qps is not None and result.hi_qps is not None
    assert result.lo_qps <= 333.0 < result.hi_qps
    assert (result.hi_qps - result.lo_qps) / result.lo_qps <= 0.05
    assert result.capacity_qps == result.lo_qps
    offered = [point.offered_qps for point in result.curve]
    assert offered == sorted(offered) and 320.0 in offered  # doubling from 10: 10, 20, ... 640


def test_search_brackets_downwards_when_the_start_rate_fails() -> None:
    policy = CapacityPolicy(target_ms=50.0, start_qps=1000.0)
    result = _search(policy, lambda rate: 10.0 + 40.0 * rate / 77.0).result()
    assert result.lo_qps is not None and result.lo_qps <= 77.0 < (result.hi_qps or 0)
    assert result.curve[-1].offered_qps == 1000.0


def test_search_reports_zero_when_even_the_minimum_rate_misses() -> None:
    policy = CapacityPolicy(target_ms=5.0, start_qps=1.0, min_qps=0.5)
    result = _search(policy, lambda rate: 100.0).result()
    assert result.capacity_qps == 0.0 and not result.converged
    assert "misses the target" in result.reason


def test_search_is_bounded_by_max_probes() -> None:
    policy = CapacityPolicy(target_ms=50.0, start_qps=1.0, max_probes=3)
    result = _search(policy, lambda rate: 1.0).result()
    assert len(result.curve) == 3 and "max_probes" in result.reason


def test_a_trial_near_the_target_is_repeated_and_the_median_decides() -> None:
    policy = CapacityPolicy(target_ms=50.0, max_trials=3)
    first = _point(100.0, 49.0, policy)
    assert rate_verdict([first], policy) is None  # within +-5% of the target: not yet stable
    second = _point(100.0, 53.0, policy)
    assert rate_verdict([first, second], policy) is None  # disagreeing verdicts
    assert rate_verdict([first, second, _point(100.0, 54.0, policy)], policy) is False
    assert rate_verdict([first, second, _point(100.0, 48.0, policy)], policy) is True


def test_a_clear_pass_decides_alone_and_a_clear_failure_once_confirmed() -> None:
    policy = CapacityPolicy(target_ms=50.0)
    assert rate_verdict([_point(100.0, 30.0, policy)], policy) is True
    failed = _point(100.0, 90.0, policy)
    assert rate_verdict([failed], policy) is None  # one failing trial may be a burst of noise
    assert rate_verdict([failed, _point(100.0, 95.0, policy)], policy) is False
    assert rate_verdict([failed, _point(100.0, 30.0, policy), _point(100.0, 31.0, policy)], policy)
    assert rate_verdict([_point(1.0, 48.5, policy), _point(1.0, 49.0, policy)], policy) is True
    unconfirmed = CapacityPolicy(target_ms=50.0, confirm_failures=False)
    assert rate_verdict([_point(100.0, 90.0, unconfirmed)], unconfirmed) is False
    single = CapacityPolicy(target_ms=50.0, max_trials=1)
    assert rate_verdict([_point(100.0, 90.0, single)], single) is False


def test_one_burst_of_noise_below_capacity_does_not_lower_the_result() -> None:
    # A trial at a rate the endpoint can carry fails once (someone else's work): confirmed
    # failures put a second trial there, and the search ends at the same bracket as without it.
    def p95_ms(rate: float) -> float:
        return 10.0 + 40.0 * rate / 500.0  # capacity 500 QPS

    def one_burst() -> object:
        bursts = iter([True])  # the first trial above 200 QPS (at 320) is slowed, once

        def noisy(rate: float) -> float:
            return 500.0 if rate > 200.0 and next(bursts, False) else p95_ms(rate)

        return noisy

    clean = _search(CapacityPolicy(target_ms=50.0), p95_ms).result()
    confirmed = _search(CapacityPolicy(target_ms=50.0), one_burst()).result()
    assert confirmed.capacity_qps == clean.capacity_qps and clean.capacity_qps > 470.0
    unconfirmed = _search(CapacityPolicy(target_ms=50.0, confirm_failures=False), one_burst())
    assert unconfirmed.result().capacity_qps < 320.0


def test_errors_fail_a_trial_even_with_a_low_p95() -> None:
    policy = CapacityPolicy(target_ms=50.0)
    assert not _point(100.0, 5.0, policy, error_ratio=0.01).passed
    assert _point(100.0, 5.0, policy, error_ratio=0.009).passed


@pytest.mark.parametrize(
    ("errors", "slow_done", "slow_in_flight", "fails"),
    [
        (10, 0, 0, True),
        (9, 0, 0, False),
        (0, 52, 0, False),
        (0, 53, 0, True),
        (0, 30, 33, True),
        (0, 30, 32, False),
        (5, 50, 7, False),
        (5, 50, 8, True),
    ],
)
def test_a_trial_is_stopped_only_once_it_cannot_pass(
    errors: int, slow_done: int, slow_in_flight: int, fails: bool
) -> None:
    # 1000 planned: 10 errors fail it; more than 50 + 2 certain slow successes fail it, where
    # in-flight slow queries count once the remaining error budget is used up.
    policy = CapacityPolicy(target_ms=50.0)
    assert trial_certainly_fails(1000, errors, slow_done, slow_in_flight, policy) is fails


@pytest.mark.parametrize(
    ("rate_qps", "window_s"), [(1000.0, 10.0), (10.0, 10.0), (2.0, 50.0), (0.5, 200.0)]
)
def test_low_rate_trials_last_long_enough_for_the_minimum_query_count(
    rate_qps: float, window_s: float
) -> None:
    assert trial_window_s(rate_qps, min_window_s=10.0, min_queries=100) == window_s


def test_repeated_searches_report_median_extremes_and_spread() -> None:
    summary = summarize_repeats([90.0, 100.0, 110.0])
    assert (summary.median_qps, summary.min_qps, summary.max_qps) == (100.0, 90.0, 110.0)
    assert summary.spread_pct == pytest.approx(20.0)
    assert not summary.agree_within(0.15) and summary.agree_within(0.20)
    assert summarize_repeats([0.0, 0.0]).spread_pct == 0.0
    assert math.isinf(summarize_repeats([0.0, 0.0, 5.0]).spread_pct)


def _simulated_md1_trial(rate_qps: float, seed: int, policy: CapacityPolicy) -> TrialPoint:
    """A 6 s trial (1 s warm-up) on an exact M/D/1 queue with 10 ms service."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate_qps, int(rate_qps * 9) + 20))
    arrivals = arrivals[arrivals < 7.0]
    free_at = [0.0]
    departures = np.empty(len(arrivals))
    for index, arrival in enumerate(arrivals):
        departures[index] = max(arrival, heapq.heappop(free_at)) + 0.010
        heapq.heappush(free_at, departures[index])
    latency_ms = (departures - arrivals)[arrivals >= 1.0] * 1e3
    return _point(rate_qps, float(np.percentile(latency_ms, 95)), policy)


def test_search_finds_md1_capacity_from_theory_on_simulated_queues() -> None:
    theory = capacity_qps(lambda rate: md1_sojourn_quantile_s(rate, 0.010, 0.95), 0.080, 100.0)
    assert theory == pytest.approx(81.0, abs=0.5)
    policy = CapacityPolicy(target_ms=80.0, start_qps=40.0)
    errors = []
    for seed in range(20):
        search = CapacitySearch(policy)
        number = 0
        while (rate := search.next_rate_qps()) is not None:
            number += 1
            search.record(_simulated_md1_trial(rate, seed * 1000 + number, policy))
        result = search.result()
        assert result.converged
        errors.append(result.capacity_qps / theory - 1)
    assert abs(float(np.median(errors))) < 0.03  # unbiased apart from reporting the lower end
    assert np.mean(np.abs(errors) <= 0.10) >= 0.9
    assert math.isfinite(max(errors))


def test_trials_at_different_rates_replay_one_query_sequence_by_default() -> None:
    # Common random numbers: the same sizes in the same order, Poisson gaps scaled by 1/rate, so
    # two trials differ only in rate (a heavy tail no longer lands differently in each trial).
    signature = ModelSignature("toy", 4, (100, 50, 10), 2, 1, 1024)
    spec = WorkloadSpec(sizes=PRODUCTION_LIKE, seed=7)

    def trial(rate_qps: float, number: int, common: bool) -> Workload:
        seed = trial_seed(spec.seed, number, common)
        return build_workload(spec.at_constant_rate(rate_qps, 10.0, seed), signature)

    slow, fast = trial(40.0, 1, True), trial(80.0, 2, True)
    shared = len(slow.scheduled_s)
    assert len(fast.scheduled_s) > shared > 300
    assert np.array_equal(slow.queries.sizes_items, fast.queries.sizes_items[:shared])
    assert np.allclose(slow.scheduled_s * 40.0, fast.scheduled_s[:shared] * 80.0)
    fresh = trial(80.0, 2, False)
    assert not np.array_equal(fresh.queries.sizes_items[:shared], slow.queries.sizes_items)


def test_repeated_searches_reuse_the_seed_unless_asked_to_vary_it() -> None:
    assert [repeat_seed(5, r, vary_seed=False) for r in range(3)] == [5, 5, 5]
    assert [repeat_seed(5, r, vary_seed=True) for r in range(3)] == [5, 6, 7]
    assert trial_seed(5, 3, common_workload=False) == 5003
