"""`TuningOutcome`: the operator's own flat view of one observe-and-decide round.

Pure data, so the two places that record a round (the cluster's RecModel status writer,
`reconcile.decision_status`, and local mode's decisions log) and `cycle` do not depend on the
tuner's internal types: `bridge.decide` converts a `Decision` and its new `TuningState` into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TuningOutcome:
    """What one tuning round observed and decided."""

    action: str
    reason: str
    changed: bool
    before_batch_items: int
    before_threshold_items: int
    after_batch_items: int
    after_threshold_items: int
    recommended_batch_items: int
    recommended_threshold_items: int
    p95_ms: float | None = None
    p99_ms: float | None = None
    qps: float | None = None
    samples: int = 0
    metrics_error: str | None = None
    metrics_sufficient: bool = False
    converged: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    forecast: dict[str, Any] | None = None  # recommend mode: `simulation.forecast.Advice`

    def message(self) -> str:
        return (
            f"{self.action}: batch {self.before_batch_items}->{self.after_batch_items}, "
            f"threshold {self.before_threshold_items}->{self.after_threshold_items}: {self.reason}"
        )
