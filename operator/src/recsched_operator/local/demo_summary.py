"""The machine-readable summary of a scripted local run (`out/demo/summary.json`), computed purely.

Per phase: what was offered (QPS, sizes, target), what was measured (p95 of the phase's last SLO
window, which is the config the tuner settled on; p95 over the whole phase; SLO attainment as the
share of the phase's sampled windows within target), which config was served at the phase's end,
how many decisions the tuner took, and the comparison with the starting config: its measured p95
(from the window before tuning began) and, where the simulator could be calibrated, its forecast
capacity beside the served config's. Inputs are plain data read by the session, so a test can feed
made-up numbers.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Series = list[tuple[float, float]]  # (unix seconds, value)


@dataclass(frozen=True)
class PhaseRecord:
    """A phase as it ran: wall-clock bounds (Unix seconds) and what it offered."""

    name: str
    what: str
    start_s: float
    end_s: float
    offered_qps: float
    sizes: str
    target_ms: float
    tuning: bool
    completed: bool = True


@dataclass(frozen=True)
class PhaseMeasure:
    """Prometheus' view of one phase: p95 of its last window and of the whole phase, the QPS of
    the last window, and the simulator's forecast (`forecasting.forecast_capacities`)."""

    p95_end_ms: float | None
    p95_phase_ms: float | None
    qps_end: float | None
    forecast: Mapping[str, Any] = field(default_factory=dict)


def _unix(at: str) -> float:
    """When a decision was taken. Its `at` is cut to whole milliseconds, so the decision happened
    within the millisecond after it; the end of that millisecond puts a decision taken right at a
    phase boundary into the phase it was taken in, not the one before."""
    return datetime.datetime.fromisoformat(at).timestamp() + 0.001


def served_at(
    decisions: Sequence[Mapping[str, Any]], start: tuple[int, int], at_s: float
) -> tuple[int, int]:
    """(batch, threshold) in force at `at_s`: after the last decision taken by then."""
    config = start
    for decision in decisions:
        if _unix(decision["at"]) <= at_s:
            config = (int(decision["after_batch_items"]), int(decision["after_threshold_items"]))
    return config


def attainment(series: Series, start_s: float, end_s: float, target_ms: float) -> float | None:
    """Share of the sampled p95 values inside [start_s, end_s] at or under the target."""
    inside = [value for at_s, value in series if start_s <= at_s <= end_s]
    if not inside:
        return None
    return sum(1 for value in inside if value <= target_ms) / len(inside)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def summarise_phases(
    phases: Sequence[PhaseRecord],
    measures: Sequence[PhaseMeasure],
    decisions: Sequence[Mapping[str, Any]],
    p95_series: Series,
    start: tuple[int, int],
    context: Mapping[str, Any],
) -> dict[str, Any]:
    """The summary document (module docstring); `context` adds run-level facts (model, device)."""
    baseline = next(
        (m for p, m in zip(phases, measures, strict=True) if not p.tuning and p.completed), None
    )
    rows = []
    for phase, measure in zip(phases, measures, strict=True):
        inside = [d for d in decisions if phase.start_s <= _unix(d["at"]) < phase.end_s]
        batch, threshold = served_at(decisions, start, phase.end_s)
        configs = sorted(
            {
                (int(d["after_batch_items"]), int(d["after_threshold_items"]))
                for d in inside
                if d.get("changed")
            }
        )
        forecast = dict(measure.forecast)
        start_row: dict[str, Any] = {
            "measuredP95Ms": _round(baseline.p95_end_ms) if baseline else None,
            "measuredAtQps": _round(baseline.qps_end) if baseline else None,
            "forecastCapacityQps": (forecast.get("start") or {}).get("capacityQps"),
        }
        rows.append(
            {
                "name": phase.name,
                "what": phase.what,
                "startS": round(phase.start_s - phases[0].start_s, 1),
                "durationS": round(phase.end_s - phase.start_s, 1),
                "completed": phase.completed,
                "tuning": phase.tuning,
                "offeredQps": phase.offered_qps,
                "sizes": phase.sizes,
                "measuredQps": _round(measure.qps_end),
                "targetMs": phase.target_ms,
                "p95Ms": _round(measure.p95_end_ms),
                "phaseP95Ms": _round(measure.p95_phase_ms),
                "metTarget": measure.p95_end_ms is not None
                and measure.p95_end_ms <= phase.target_ms,
                "sloAttainment": _round(
                    attainment(p95_series, phase.start_s, phase.end_s, phase.target_ms), 2
                ),
                "servedBatchSize": batch,
                "servedOffloadThreshold": threshold,
                "configsTried": [{"batchSize": b, "offloadThreshold": t} for b, t in configs],
                "decisions": len(inside),
                "changes": sum(1 for d in inside if d.get("changed")),
                "startConfig": start_row,
                "forecast": forecast,
            }
        )
    changed = [d for d in decisions if d.get("changed")]
    return {
        **context,
        "startConfig": {"batchSize": start[0], "offloadThreshold": start[1]},
        "phases": rows,
        "decisions": len(decisions),
        "knobsMoved": {
            "batchSize": any(d["after_batch_items"] != d["before_batch_items"] for d in changed),
            "offloadThreshold": any(
                d["after_threshold_items"] != d["before_threshold_items"] for d in changed
            ),
        },
        "interrupted": any(not p.completed for p in phases),
    }
