"""Open-loop arrival schedules: when each query is due, in seconds from the start of a run (pure).

A schedule is computed in full before a run and the driver sends query i at `start + offset_s[i]`
on an absolute clock, so send overhead can never stretch the gaps (DeepRecInfra slept an integer
Poisson number of milliseconds *after* each enqueue, which lowers the real rate; facts 2.1).

Rates follow a piecewise-linear profile (`RATE:SECONDS` segments; `A-B:SECONDS` ramps), which
covers a constant rate, steps and ramps. Poisson arrivals use exponential gaps drawn fresh per
query in the profile's cumulative-intensity time Lambda(t) and mapped back through Lambda^-1
(time rescaling), which is exact for a time-varying rate. Constant (deterministic) arrivals put
query k at Lambda(t) = k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recsched_loadtest.errors import SpecError

ScheduleArray = npt.NDArray[np.float64]
MAX_SCHEDULED_QUERIES = 20_000_000


@dataclass(frozen=True)
class RateSegment:
    """The offered rate moves linearly from `start_qps` to `end_qps` over `duration_s`."""

    duration_s: float
    start_qps: float
    end_qps: float

    @property
    def expected_queries(self) -> float:
        return 0.5 * (self.start_qps + self.end_qps) * self.duration_s


@dataclass(frozen=True)
class RateProfile:
    segments: tuple[RateSegment, ...]

    @property
    def duration_s(self) -> float:
        return sum(segment.duration_s for segment in self.segments)

    @property
    def expected_queries(self) -> float:
        return sum(segment.expected_queries for segment in self.segments)

    @property
    def mean_rate_qps(self) -> float:
        return self.expected_queries / self.duration_s

    def describe(self) -> str:
        parts = []
        for segment in self.segments:
            rate = f"{segment.start_qps:g}"
            if segment.end_qps != segment.start_qps:
                rate += f"-{segment.end_qps:g}"
            parts.append(f"{rate}:{segment.duration_s:g}")
        return ",".join(parts)


def constant_rate(rate_qps: float, duration_s: float) -> RateProfile:
    return make_profile([RateSegment(duration_s, rate_qps, rate_qps)])


def make_profile(segments: Sequence[RateSegment]) -> RateProfile:
    if not segments:
        raise SpecError("a rate profile needs at least one segment")
    for segment in segments:
        if not (segment.duration_s > 0 and math.isfinite(segment.duration_s)):
            raise SpecError(f"segment duration must be > 0 s, got {segment.duration_s}")
        if min(segment.start_qps, segment.end_qps) < 0 or not math.isfinite(
            segment.start_qps + segment.end_qps
        ):
            raise SpecError(f"segment rates must be finite and >= 0 QPS, got {segment}")
    profile = RateProfile(tuple(segments))
    if profile.expected_queries > MAX_SCHEDULED_QUERIES:
        raise SpecError(
            f"profile {profile.describe()} offers {profile.expected_queries:.0f} queries; "
            f"the bound is {MAX_SCHEDULED_QUERIES}"
        )
    if profile.expected_queries <= 0:
        raise SpecError(f"profile {profile.describe()} offers no queries")
    return profile


def parse_rate_profile(spec: str) -> RateProfile:
    """Parse `RATE:SECONDS[,RATE:SECONDS...]` where RATE is `QPS` or `FROM-TO` (a ramp)."""
    segments = []
    for part in spec.split(","):
        rate_text, sep, seconds_text = part.strip().partition(":")
        if not sep:
            raise SpecError(
                f"rate segment {part!r}: expected RATE:SECONDS (e.g. 100:30, 50-200:60)"
            )
        start_text, _, end_text = rate_text.partition("-")
        try:
            start_qps = float(start_text)
            end_qps = float(end_text) if end_text else start_qps
            duration_s = float(seconds_text)
        except ValueError as exc:
            raise SpecError(f"rate segment {part!r}: not a number") from exc
        segments.append(RateSegment(duration_s, start_qps, end_qps))
    return make_profile(segments)


def _segment_bounds(profile: RateProfile) -> tuple[ScheduleArray, ScheduleArray]:
    """Start time (s) and start cumulative intensity (queries) of every segment."""
    durations = np.array([segment.duration_s for segment in profile.segments])
    masses = np.array([segment.expected_queries for segment in profile.segments])
    starts_s = np.concatenate(([0.0], np.cumsum(durations)[:-1]))
    starts_mass = np.concatenate(([0.0], np.cumsum(masses)[:-1]))
    return starts_s, starts_mass


def invert_cumulative_intensity(profile: RateProfile, mass: ScheduleArray) -> ScheduleArray:
    """Map cumulative intensity values (expected-query counts) to times: Lambda^-1(mass)."""
    starts_s, starts_mass = _segment_bounds(profile)
    index = np.clip(np.searchsorted(starts_mass, mass, side="right") - 1, 0, len(starts_s) - 1)
    start_qps = np.array([segment.start_qps for segment in profile.segments])[index]
    end_qps = np.array([segment.end_qps for segment in profile.segments])[index]
    duration_s = np.array([segment.duration_s for segment in profile.segments])[index]
    within = mass - starts_mass[index]
    # Solve a*t + k*t^2 = within with k = (b - a) / (2d); the form 2u / (a + sqrt(a^2 + 4ku))
    # is stable for k -> 0 and for a = 0.
    slope = (end_qps - start_qps) / (2.0 * duration_s)
    root = np.sqrt(np.maximum(start_qps * start_qps + 4.0 * slope * within, 0.0))
    denominator = start_qps + root
    with np.errstate(divide="ignore", invalid="ignore"):
        offset_s = np.where(denominator > 0, 2.0 * within / denominator, 0.0)
    result: ScheduleArray = starts_s[index] + np.minimum(offset_s, duration_s)
    return result


def poisson_schedule_s(rng: np.random.Generator, profile: RateProfile) -> ScheduleArray:
    """Poisson arrivals: exponential gaps (fresh per query) on the profile's time-varying rate."""
    total_mass = profile.expected_queries
    chunks: list[ScheduleArray] = []
    reached = 0.0
    chunk_size = int(total_mass + 6.0 * math.sqrt(total_mass) + 16)
    # Each pass overshoots the expected count by 6 sigma, so a second pass is rare; bounded anyway.
    for _ in range(64):
        masses = reached + np.cumsum(rng.exponential(1.0, chunk_size))
        chunks.append(masses)
        reached = float(masses[-1])
        if reached >= total_mass:
            break
    all_mass = np.concatenate(chunks)
    return invert_cumulative_intensity(profile, all_mass[all_mass < total_mass])


def constant_schedule_s(profile: RateProfile) -> ScheduleArray:
    """Deterministic arrivals: query k is due when the cumulative intensity reaches k."""
    count = math.ceil(profile.expected_queries - 1e-9)
    return invert_cumulative_intensity(profile, np.arange(count, dtype=np.float64))


def trace_schedule_s(timestamps_s: Sequence[float], speedup: float = 1.0) -> ScheduleArray:
    """Replay recorded arrival times (any origin, any order) as offsets from the first one."""
    if speedup <= 0 or not math.isfinite(speedup):
        raise SpecError(f"trace speedup must be > 0, got {speedup}")
    times = np.sort(np.asarray(timestamps_s, dtype=np.float64))
    if times.size == 0:
        raise SpecError("the arrival trace is empty")
    if times.size > MAX_SCHEDULED_QUERIES or not np.all(np.isfinite(times)):
        raise SpecError("the arrival trace has non-finite times or too many entries")
    result: ScheduleArray = (times - times[0]) / speedup
    return result


def parse_trace(text: str, source: str = "trace") -> list[float]:
    """Arrival times in seconds, one per line (first column of a CSV); '#' lines skipped."""
    times: list[float] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        first = stripped.replace(";", ",").split(",")[0].strip()
        try:
            times.append(float(first))
        except ValueError as exc:
            if not times and line_number == 1:
                continue  # a CSV header line
            raise SpecError(f"{source}:{line_number}: not a time in seconds: {first!r}") from exc
    return times
