"""A scripted local run: named phases of offered load, query-size mix and SLO, as pure data.

`make demo` drives its RecModel through phases a newcomer can follow: the starting config measured
under the steady load before tuning begins, then the steady load with the tuner on, a step up in
load, a shift of the size mix towards large queries, and an edit of the SLO in the manifest. The
phases say what to offer; the session (`session.py`) runs them and the summary (`demo_summary.py`)
judges them, so the plan here is checked by tests without starting anything.

Load runs as `recsched-loadtest run` processes. Consecutive phases with the same size mix share one
process whose rate profile (`--profile RATE:SECONDS,...`) steps the load, so a load step has no
gap; only a change of size mix starts a new process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    """What one phase offers. `target_ms`, when set, is written into the manifest's SLO at the
    phase's start (an edit while running); `tuning` False holds the served config (the start
    config's measured window)."""

    name: str
    duration_s: float
    qps: float
    sizes: str
    target_ms: float | None = None
    tuning: bool = True
    what: str = ""

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or self.qps <= 0:
            raise ValueError(f"phase {self.name!r}: duration_s and qps must be positive")


@dataclass(frozen=True)
class TimedPhase:
    """A phase with its place in the run, in seconds since the load began."""

    phase: Phase
    start_s: float
    end_s: float


@dataclass(frozen=True)
class LoadRun:
    """One load-generator process: a size mix and a rate profile, from `start_s` of the run."""

    start_s: float
    sizes: str
    segments: tuple[tuple[float, float], ...]  # (qps, seconds)

    @property
    def duration_s(self) -> float:
        return sum(seconds for _, seconds in self.segments)

    def profile(self) -> str:
        """`recsched-loadtest run --profile` text."""
        return ",".join(f"{qps:g}:{seconds:g}" for qps, seconds in self.segments)


def timeline(phases: Sequence[Phase]) -> list[TimedPhase]:
    """Each phase with its start and end, back to back from 0."""
    timed: list[TimedPhase] = []
    start_s = 0.0
    for phase in phases:
        timed.append(TimedPhase(phase, start_s, start_s + phase.duration_s))
        start_s += phase.duration_s
    return timed


def load_runs(phases: Sequence[Phase]) -> list[LoadRun]:
    """One process per stretch of phases sharing a size mix (module docstring)."""
    runs: list[LoadRun] = []
    for timed in timeline(phases):
        phase = timed.phase
        segment = (phase.qps, phase.duration_s)
        if runs and runs[-1].sizes == phase.sizes:
            last = runs[-1]
            runs[-1] = LoadRun(last.start_s, last.sizes, (*last.segments, segment))
        else:
            runs.append(LoadRun(timed.start_s, phase.sizes, (segment,)))
    return runs


def phase_at(timed: Sequence[TimedPhase], offset_s: float) -> TimedPhase | None:
    """The phase running `offset_s` seconds into the load, None before or after all."""
    return next((t for t in timed if t.start_s <= offset_s < t.end_s), None)


@dataclass(frozen=True)
class DemoLoad:
    """The demo's knobs on load: base QPS and size mix, the step, the large-query mix, and the
    SLO edit. Defaults are the ones `make demo` measured (README, 'make demo')."""

    qps: float
    sizes: str = "production"
    step_factor: float = 1.5
    large_sizes: str = "lognormal:5.8,0.6"
    large_qps_factor: float = 0.6
    edited_target_ms: float | None = None


# Shares of the tuned part of the run (after the start config's window) per phase: the first
# search starts from the worst corner and needs the most windows.
_SHARES = {"steady": 0.34, "load step": 0.22, "large queries": 0.22, "SLO edit": 0.22}


def demo_phases(total_s: float, window_s: float, load: DemoLoad) -> tuple[Phase, ...]:
    """The demo's phases in `total_s` seconds of load. The start config is measured for one SLO
    window plus a few seconds (so a full window lies inside it); without an edited target the
    SLO-edit phase is left out and the others share its time."""
    start_s = window_s + 4.0
    shares = dict(_SHARES)
    if load.edited_target_ms is None:
        del shares["SLO edit"]
    tuned_s = total_s - start_s
    if tuned_s < window_s * len(shares):
        raise ValueError(
            f"{total_s:g} s is too short: each of the {len(shares)} tuned phases needs at least "
            f"one SLO window ({window_s:g} s) after {start_s:g} s at the start config"
        )
    scale = tuned_s / sum(shares.values())

    def seconds(name: str) -> float:
        return round(shares[name] * scale, 1)

    step_qps = load.qps * load.step_factor
    large_qps = step_qps * load.large_qps_factor
    phases = [
        Phase(
            "start config", start_s, load.qps, load.sizes, tuning=False,
            what="the starting config, measured before tuning begins",
        ),
        Phase("steady", seconds("steady"), load.qps, load.sizes, what="tuner on, same load"),
        Phase(
            "load step", seconds("load step"), step_qps, load.sizes,
            what=f"offered load x{load.step_factor:g}",
        ),
        Phase(
            "large queries", seconds("large queries"), large_qps, load.large_sizes,
            what=f"size mix shifts to {load.large_sizes}",
        ),
    ]  # fmt: skip
    if load.edited_target_ms is not None:
        phases.append(
            Phase(
                "SLO edit", seconds("SLO edit"), large_qps, load.large_sizes,
                target_ms=load.edited_target_ms,
                what=f"manifest's p95 target edited to {load.edited_target_ms:g} ms",
            )
        )  # fmt: skip
    return tuple(phases)
