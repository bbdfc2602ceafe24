"""Latency-bounded throughput search: bracket, then bisect, with repeated trials (pure).

Capacity is the highest offered QPS whose p95 stays <= target with an error ratio below
`max_error_ratio` (facts 4.2). DeepRecSched walked a fixed log grid one step per 64 queries and took
a median of visited points (facts 4.3), which mixes transients into the answer. Here each probe is
a full open-loop trial (warm-up discarded) and the search is:

1. bracket: from `start_qps`, multiply by `growth` while trials pass (divide while they fail);
2. bisect geometrically between the highest passing rate `lo` and the lowest failing rate `hi`
   until (hi - lo) / lo <= `tolerance` (5% by default), and report `lo`;
3. at each rate, repeat trials while the verdict is unstable: trials that disagree, or a p95 whose
   trials spread more than +-`stable_pct` around a median that lies within +-`stable_pct` of the
   target; after `max_trials` the median p95 and the pooled error ratio decide;
4. a failing trial is confirmed by a second one before the rate counts as failed
   (`confirm_failures`). Noise on a shared machine is one-sided: other work only ever makes a
   trial slower, so one passing trial is evidence and one failing trial may be a burst of
   someone else's work (a p50 that jumps 10x at +4% rate). Without this, one burst near the
   bracket moved a quiet pod's capacity 20-35% from one search to the next. Overloaded trials
   stop early, so confirming them is cheap.

The class is a state machine fed with trial results, so the I/O side stays a thin loop and the
tests can drive it with a simulated queue. `trial_window_s` makes each trial long enough for a
minimum number of queries at its rate (at 1 QPS, 10 s would be 10 queries: a p95 of nothing), and
`summarize_repeats` gives the spread of repeated searches (one search on a shared machine is one
sample, not a figure).

Common random numbers (`trial_seed`): by default every trial of a search, at every rate, replays
the same query sequence (sizes, tensors, and Poisson gaps scaled by 1/rate), so two trials differ
only in rate and in the machine's noise. With fresh draws per trial, the heavy tail of a
production size mix made the p95 near saturation depend on where the largest queries happened to
cluster, and three searches of one quiet pod spread 21-34% (docs/benchmarks/loadtest.md, section
5). `repeat_seed` likewise makes `--repeat` re-measure the same workload unless asked to vary it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from recsched_loadtest.errors import SpecError


@dataclass(frozen=True)
class CapacityPolicy:
    target_ms: float
    start_qps: float = 10.0
    max_error_ratio: float = 0.01
    tolerance: float = 0.05
    growth: float = 2.0
    min_qps: float = 0.1
    max_qps: float = 1_000_000.0
    min_trials: int = 1
    max_trials: int = 3
    stable_pct: float = 0.05
    max_probes: int = 30
    confirm_failures: bool = True  # a failing trial needs a second one (up to max_trials)

    def __post_init__(self) -> None:
        if not (self.target_ms > 0 and self.start_qps > 0 and self.growth > 1):
            raise SpecError("capacity search needs target_ms > 0, start_qps > 0 and growth > 1")
        if not 0 < self.tolerance < 1 or not 1 <= self.min_trials <= self.max_trials:
            raise SpecError("capacity search needs 0 < tolerance < 1, 1 <= min/max trials")
        if not 0 < self.min_qps <= self.max_qps:
            raise SpecError("capacity search needs 0 < min_qps <= max_qps")


@dataclass(frozen=True)
class TrialPoint:
    """One trial, as it appears on the printed curve."""

    offered_qps: float
    achieved_qps: float
    p50_ms: float
    p95_ms: float  # inf when no query succeeded
    p99_ms: float
    error_ratio: float
    queries: int
    passed: bool
    stopped_early: bool


def trial_passes(p95_ms: float, error_ratio: float, ok: int, policy: CapacityPolicy) -> bool:
    return ok > 0 and p95_ms <= policy.target_ms and error_ratio < policy.max_error_ratio


def trial_certainly_fails(
    planned: int, errors: int, slow_done: int, slow_in_flight: int, policy: CapacityPolicy
) -> bool:
    """True once a running trial can no longer pass, so it may stop early.

    `planned` is the number of queries in the trial's window; `slow_done` successes above the
    target; `slow_in_flight` queries already older than the target (each ends slow or as an
    error). Errors reaching the bound fail it outright. Otherwise at most the remaining error
    budget of the in-flight ones can still turn into errors instead of slow successes, and more
    than 5% slow successes puts the p95 above target (2 queries of slack cover percentile
    interpolation).
    """
    if planned <= 0:
        return False
    error_budget = policy.max_error_ratio * planned
    if errors >= error_budget:
        return True
    certain_slow = slow_done + max(0.0, slow_in_flight - (error_budget - errors))
    return certain_slow > 0.05 * planned + 2


def rate_verdict(trials: list[TrialPoint], policy: CapacityPolicy) -> bool | None:
    """Pass/fail for one rate, or None when another trial is needed."""
    if len(trials) < policy.min_trials:
        return None
    # A trial stopped early only has a lower bound on its p95: treat it as unbounded.
    p95s = [math.inf if trial.stopped_early else trial.p95_ms for trial in trials]
    median_p95 = statistics.median(p95s)
    verdicts = {trial.passed for trial in trials}
    finite = all(math.isfinite(p95) for p95 in p95s)
    tight = (
        len(trials) >= 2 and finite and max(p95s) - min(p95s) <= 2 * policy.stable_pct * median_p95
    )
    far = abs(median_p95 - policy.target_ms) > policy.stable_pct * policy.target_ms
    if len(verdicts) == 1 and (tight or far):
        unconfirmed = not trials[0].passed and policy.confirm_failures and len(trials) < 2
        if not (unconfirmed and len(trials) < policy.max_trials):
            return trials[0].passed
    if len(trials) < policy.max_trials:
        return None
    total = sum(trial.queries for trial in trials)
    pooled_errors = sum(trial.error_ratio * trial.queries for trial in trials) / max(total, 1)
    return median_p95 <= policy.target_ms and pooled_errors < policy.max_error_ratio


def trial_window_s(rate_qps: float, min_window_s: float, min_queries: int) -> float:
    """Measured seconds of a trial: at least `min_window_s`, and long enough that `min_queries`
    arrive on average at `rate_qps`."""
    if rate_qps <= 0:
        raise SpecError("a trial needs a positive rate")
    return max(min_window_s, min_queries / rate_qps)


def trial_seed(base_seed: int, trial_number: int, common_workload: bool) -> int:
    """Seed of trial `trial_number` (1-based): the search's own seed for every trial under
    common random numbers; otherwise a fresh seed per trial."""
    return base_seed if common_workload else base_seed * 1000 + trial_number


def repeat_seed(base_seed: int, repeat: int, vary_seed: bool) -> int:
    """Seed of repeated search `repeat` (0-based): the same workload again, or SEED + repeat."""
    return base_seed + repeat if vary_seed else base_seed


@dataclass(frozen=True)
class RepeatSummary:
    """Capacities of K repeated searches of the same endpoint and their spread."""

    capacities_qps: tuple[float, ...]
    median_qps: float
    min_qps: float
    max_qps: float
    spread_pct: float  # (max - min) / median, in percent; inf when the median is 0

    def agree_within(self, fraction: float) -> bool:
        return self.spread_pct <= 100 * fraction


def summarize_repeats(capacities_qps: list[float]) -> RepeatSummary:
    if not capacities_qps:
        raise SpecError("no capacity searches to summarise")
    median = statistics.median(capacities_qps)
    low, high = min(capacities_qps), max(capacities_qps)
    spread = 100 * (high - low) / median if median > 0 else (0.0 if high == 0 else math.inf)
    return RepeatSummary(tuple(capacities_qps), median, low, high, spread)


@dataclass(frozen=True)
class CapacityResult:
    capacity_qps: float  # highest rate that passed; 0 when none did
    lo_qps: float | None
    hi_qps: float | None
    converged: bool
    reason: str
    curve: tuple[TrialPoint, ...]


@dataclass
class CapacitySearch:
    policy: CapacityPolicy
    lo_qps: float | None = None
    hi_qps: float | None = None
    curve: list[TrialPoint] = field(default_factory=list)
    _rate_qps: float | None = None
    _rate_trials: list[TrialPoint] = field(default_factory=list)
    _probes: int = 0
    _finished: str | None = None

    def next_rate_qps(self) -> float | None:
        """The rate of the next trial, or None when the search is over."""
        if self._finished is not None:
            return None
        if self._rate_qps is not None:
            return self._rate_qps  # more trials at the current rate
        rate = self._choose_rate()
        if rate is None:
            return None
        if self._probes >= self.policy.max_probes:
            self._finished = f"stopped after {self._probes} rates (max_probes)"
            return None
        self._probes += 1
        self._rate_qps = rate
        return rate

    def _choose_rate(self) -> float | None:
        policy = self.policy
        lo, hi = self.lo_qps, self.hi_qps
        if lo is None and hi is None:
            return min(max(policy.start_qps, policy.min_qps), policy.max_qps)
        if lo is None:
            assert hi is not None
            if hi <= policy.min_qps:
                self._finished = f"even {policy.min_qps:g} QPS misses the target"
                return None
            return max(hi / policy.growth, policy.min_qps)
        if hi is None:
            if lo >= policy.max_qps:
                self._finished = f"capacity is at least max_qps={policy.max_qps:g}"
                return None
            return min(lo * policy.growth, policy.max_qps)
        if (hi - lo) / lo <= policy.tolerance:
            self._finished = f"converged: capacity in [{lo:.4g}, {hi:.4g}) QPS"
            return None
        return math.sqrt(lo * hi)

    def record(self, trial: TrialPoint) -> None:
        """Feed the result of a trial run at `next_rate_qps()`."""
        if self._rate_qps is None:
            raise RuntimeError("record() called without a pending rate")
        self.curve.append(trial)
        self._rate_trials.append(trial)
        verdict = rate_verdict(self._rate_trials, self.policy)
        if verdict is None:
            return
        rate = self._rate_qps
        if verdict:
            self.lo_qps = rate if self.lo_qps is None else max(self.lo_qps, rate)
        else:
            self.hi_qps = rate if self.hi_qps is None else min(self.hi_qps, rate)
        self._rate_qps = None
        self._rate_trials = []

    def stop(self, reason: str) -> None:
        self._finished = reason

    def result(self) -> CapacityResult:
        reason = self._finished or "not finished"
        return CapacityResult(
            capacity_qps=self.lo_qps or 0.0,
            lo_qps=self.lo_qps,
            hi_qps=self.hi_qps,
            converged=reason.startswith("converged") or reason.startswith("capacity is at"),
            reason=reason,
            curve=tuple(sorted(self.curve, key=lambda trial: trial.offered_qps)),
        )
