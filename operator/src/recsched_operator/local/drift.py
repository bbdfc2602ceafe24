"""Drift on the real loop: the phases of a load step or an SLO edit, and the recovery figures.

Issue 15 measures on the simulator how the tuner recovers from a change (`tuner.simulation.drift`);
this is the same measurement on local mode's real pods. A drift run has three phases
(`drift_phases`): the start config held for one SLO window (a pod's first seconds run slower), the
tuner settling at the base load, then the change (offered load x `step_factor`, or the manifest's
target rewritten while it runs) for the rest of the run. The static baseline runs the same phases
with the manifest's tuning mode `off`: the tuner still observes every interval, so both runs are
judged on the same windows, but nothing is applied.

The figures come from the tuner's own decision log (`decisions.jsonl`): each decision records the
p95 of the window it judged. Pure functions of that log (`drift_outcome`) give, as the simulator
does, the decisions and seconds until a window within the target follows the change, and the
violation seconds (windows over target x the tuning interval), so a test can feed made-up logs.
"""

from __future__ import annotations

import datetime
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recsched_operator.local.scenario import Phase

# A decision taken this soon after the change judged a window of pre-change traffic: with a
# settle phase a whole number of intervals long, the phase switch and a tuning step fall on the
# same tick of `ScenarioRun`'s loop, in either order.
BOUNDARY_S = 1.0
LOAD_STEP = "load step"
SLO_EDIT = "SLO edit"
DRIFT_KINDS = (LOAD_STEP, SLO_EDIT)


def drift_phases(
    kind: str,
    *,
    qps: float,
    sizes: str,
    window_s: float,
    settle_s: float,
    after_s: float,
    step_factor: float = 1.5,
    edited_target_ms: float | None = None,
) -> tuple[Phase, ...]:
    """Held start window, settling at `qps`, then the change for `after_s` seconds."""
    if kind not in DRIFT_KINDS:
        raise ValueError(f"drift kind {kind!r}: expected one of {', '.join(DRIFT_KINDS)}")
    if kind == SLO_EDIT and edited_target_ms is None:
        raise ValueError("an SLO edit needs edited_target_ms")
    held = Phase(
        "start config", window_s + 4.0, qps, sizes, tuning=False,
        what="the starting config held for one SLO window (warm-up)",
    )  # fmt: skip
    settle = Phase("settle", settle_s, qps, sizes, what="tuner on at the base load")
    if kind == LOAD_STEP:
        change = Phase(
            LOAD_STEP, after_s, qps * step_factor, sizes, what=f"offered load x{step_factor:g}"
        )
    else:
        change = Phase(
            SLO_EDIT, after_s, qps, sizes, target_ms=edited_target_ms,
            what=f"manifest's p95 target edited to {edited_target_ms:g} ms",
        )  # fmt: skip
    return (held, settle, change)


@dataclass(frozen=True)
class Window:
    """One tuner decision: when (Unix s), the p95 of the window it judged, the config it left."""

    at_s: float
    p95_ms: float | None
    qps: float | None
    config: tuple[int, int]  # (batch items, threshold items) after the decision
    converged: bool = False


def windows_from_decisions(decisions: Sequence[Mapping[str, Any]]) -> list[Window]:
    """The decision log (`LocalTuner`'s records) as windows, in time order."""
    windows = [
        Window(
            at_s=datetime.datetime.fromisoformat(d["at"]).timestamp(),
            p95_ms=None if d.get("p95_ms") is None else float(d["p95_ms"]),
            qps=None if d.get("qps") is None else float(d["qps"]),
            config=(int(d["after_batch_items"]), int(d["after_threshold_items"])),
            converged=bool(d.get("converged")),
        )
        for d in decisions
    ]
    return sorted(windows, key=lambda w: w.at_s)


def first_window_s(windows: Sequence[Window]) -> float:
    """When the settle phase began: `ScenarioRun` takes its first tuning step as the first
    tuned phase begins (within the scheduler's ~0.1 s), so the change follows `settle_s` later."""
    if not windows:
        raise ValueError("no decisions: the run never reached its tuned phases")
    return windows[0].at_s


@dataclass(frozen=True)
class DriftOutcome:
    """A run's record around its change at `change_s`. `met_after_decisions` counts decisions
    after the change before the first window within target that lies wholly after it (0, and
    0 s, when no window before that one went over target, as the simulator counts); None if
    never met again. A window over target after that one (a probe, a noisy window) counts in
    the violation seconds only."""

    met_after_decisions: int | None
    met_after_s: float | None
    violation_after_s: float
    violation_run_s: float
    windows_after: int
    config_before: tuple[int, int] | None
    config_after: tuple[int, int] | None
    converged_at_change: bool
    p95_before_ms: float | None  # median of the windows judged in the minute before the change
    p95_after_ms: float | None  # median of the windows wholly after the change


def _over(window: Window, target_ms: float) -> bool:
    return window.p95_ms is not None and window.p95_ms > target_ms


def drift_outcome(
    windows: Sequence[Window],
    *,
    change_s: float,
    target_before_ms: float,
    target_after_ms: float,
    window_s: float,
    interval_s: float,
) -> DriftOutcome:
    """Recovery figures (module docstring). A window judged up to `BOUNDARY_S` after the change
    counts as before it, against the old target; one that straddles the change counts as after
    it (it holds post-change traffic) but cannot show recovery (it also holds pre-change
    traffic)."""
    before = [w for w in windows if w.at_s <= change_s + BOUNDARY_S]
    after = [w for w in windows if w.at_s > change_s + BOUNDARY_S]
    violation_before = sum(1 for w in before if _over(w, target_before_ms))
    over_after = [_over(w, target_after_ms) for w in after]
    met_decisions: int | None = None
    met_s: float | None = None
    for index, window in enumerate(after):
        whole = window.at_s - window_s >= change_s
        if whole and window.p95_ms is not None and not over_after[index]:
            # 0 when nothing after the change went over target before this window.
            met_decisions = index if any(over_after[:index]) else 0
            met_s = window.at_s - change_s if met_decisions else 0.0
            break
    recent = [w.p95_ms for w in before if w.p95_ms is not None and w.at_s >= change_s - 60.0]
    settled = [w.p95_ms for w in after if w.p95_ms is not None and w.at_s - window_s >= change_s]
    return DriftOutcome(
        met_after_decisions=met_decisions,
        met_after_s=met_s,
        violation_after_s=sum(over_after) * interval_s,
        violation_run_s=(violation_before + sum(over_after)) * interval_s,
        windows_after=len(after),
        config_before=before[-1].config if before else None,
        config_after=windows[-1].config if windows else None,
        converged_at_change=bool(before) and before[-1].converged,
        p95_before_ms=statistics.median(recent) if recent else None,
        p95_after_ms=statistics.median(settled) if settled else None,
    )
