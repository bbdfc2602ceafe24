"""Arrival schedules: Poisson gaps, constant rate, steps/ramps, trace replay (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from recsched_loadtest.arrivals import (
    constant_rate,
    constant_schedule_s,
    parse_rate_profile,
    parse_trace,
    poisson_schedule_s,
    trace_schedule_s,
)
from recsched_loadtest.errors import SpecError


def test_poisson_gaps_are_exponential_with_the_offered_rate() -> None:
    schedule = poisson_schedule_s(np.random.default_rng(1), constant_rate(100.0, 200.0))
    gaps = np.diff(schedule)
    assert len(schedule) == pytest.approx(20_000, abs=4 * np.sqrt(20_000))
    assert gaps.mean() == pytest.approx(0.010, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)  # CV of an exponential
    # Kolmogorov-Smirnov against Exp(100): 1.63 / sqrt(n) is the 1% critical value.
    ordered = np.sort(gaps)
    empirical = np.arange(1, len(ordered) + 1) / len(ordered)
    distance = np.max(np.abs(empirical - (1 - np.exp(-100.0 * ordered))))
    assert distance < 1.63 / np.sqrt(len(ordered))
    assert np.all(gaps > 0) and schedule[-1] < 200.0


def test_poisson_gaps_are_not_whole_milliseconds() -> None:
    gaps_ms = np.diff(poisson_schedule_s(np.random.default_rng(2), constant_rate(50.0, 20.0))) * 1e3
    assert np.mean(np.abs(gaps_ms - np.rint(gaps_ms)) > 1e-6) > 0.99  # DeepRecInfra used ints


def test_constant_schedule_has_exact_gaps() -> None:
    schedule = constant_schedule_s(constant_rate(250.0, 4.0))
    assert len(schedule) == 1000
    assert np.allclose(np.diff(schedule), 0.004)
    assert schedule[0] == 0.0


def test_rate_steps_offer_each_step_rate() -> None:
    profile = parse_rate_profile("50:20,200:20,100:20")
    schedule = poisson_schedule_s(np.random.default_rng(4), profile)
    counts, _ = np.histogram(schedule, bins=[0, 20, 40, 60])
    for count, expected in zip(counts, (1000, 4000, 2000), strict=True):
        assert count == pytest.approx(expected, abs=4 * np.sqrt(expected))
    assert profile.mean_rate_qps == pytest.approx(350 / 3)


def test_ramp_rate_rises_linearly() -> None:
    profile = parse_rate_profile("100-300:60")
    schedule = poisson_schedule_s(np.random.default_rng(5), profile)
    counts, edges = np.histogram(schedule, bins=np.arange(0, 61, 10))
    middles = (edges[:-1] + edges[1:]) / 2
    for count, middle in zip(counts, middles, strict=True):
        expected = (100 + 200 * middle / 60) * 10
        assert count == pytest.approx(expected, abs=4 * np.sqrt(expected))
    deterministic = constant_schedule_s(profile)
    assert len(deterministic) == 12_000
    assert 1 / np.diff(deterministic)[:10].mean() == pytest.approx(100, rel=0.01)
    assert 1 / np.diff(deterministic)[-10:].mean() == pytest.approx(300, rel=0.01)


def test_schedule_is_reproducible_from_the_seed() -> None:
    profile = constant_rate(10.0, 10.0)
    first = poisson_schedule_s(np.random.default_rng(9), profile)
    assert np.array_equal(first, poisson_schedule_s(np.random.default_rng(9), profile))


def test_trace_replay_keeps_gaps_and_applies_speedup() -> None:
    times = parse_trace("arrival_s\n100.5\n100.0\n101.0, extra\n# comment\n103.0\n", "t.csv")
    assert trace_schedule_s(times).tolist() == [0.0, 0.5, 1.0, 3.0]
    assert trace_schedule_s(times, speedup=2.0).tolist() == [0.0, 0.25, 0.5, 1.5]


@pytest.mark.parametrize("spec", ["100", "100:0", "-5:10", "a:b", "0:10"])
def test_invalid_rate_profiles_are_rejected(spec: str) -> None:
    with pytest.raises(SpecError):
        parse_rate_profile(spec)


def test_a_profile_beyond_the_query_bound_is_rejected() -> None:
    with pytest.raises(SpecError, match="bound"):
        constant_rate(1e6, 1e3)
