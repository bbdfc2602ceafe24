"""The tuner's memory between decisions, as a plain record that fits in a RecModel status.

Everything the policy needs to resume after an operator restart is here and nothing else: the
incumbent and its reference latency, the probe in flight, step sizes, what the search converged
on, and a capped list of recent trials. `to_dict`/`from_dict` use JSON types only (camelCase keys,
as in the rest of the status) and round-trip exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from recsched_operator.tuner.knobs import Knob, KnobConfig

Phase = Literal["search", "converged"]
Verdict = Literal["better", "worse", "tie", "broke-slo"]


@dataclass(frozen=True)
class Trial:
    """A probe's outcome: its capacity use (`objective.capacity_use`) and latency (tracked
    percentile, ms) at `qps`, judged against the incumbent of search `epoch`."""

    config: KnobConfig
    use: float
    latency_ms: float
    qps: float
    verdict: Verdict
    at_s: float
    epoch: int
    gpu_utilization: float | None = None
    """The GPU pool's utilisation in the probe's window (None: no GPU pool or not reported)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "use": self.use,
            "latencyMs": self.latency_ms,
            "qps": self.qps,
            "verdict": self.verdict,
            "atS": self.at_s,
            "epoch": self.epoch,
            "gpuUtilization": self.gpu_utilization,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        return cls(
            config=KnobConfig.from_dict(data["config"]),
            use=float(data["use"]),
            latency_ms=float(data["latencyMs"]),
            qps=float(data["qps"]),
            verdict=cast(Verdict, data["verdict"]),
            at_s=float(data["atS"]),
            epoch=int(data["epoch"]),
            gpu_utilization=None
            if data.get("gpuUtilization") is None
            else float(data["gpuUtilization"]),
        )


@dataclass(frozen=True)
class TuningState:
    """Search state. `reference_use` and `reference_ms` are the incumbent's capacity use and
    tracked percentile at `reference_qps` and `reference_items_per_s` (geometric means of
    `reference_count` measurements, uses scaled to that item rate);
    `probe` is the config on trial (served instead of the incumbent) or None, with
    `probe_count` earlier measurements averaging `probe_use`/`probe_ms` when a close call is
    being measured again; steps are in grid positions; `converged_*` describe where a finished
    search settled, for drift detection."""

    phase: Phase = "search"
    epoch: int = 0
    incumbent: KnobConfig | None = None
    reference_use: float | None = None
    reference_ms: float | None = None
    reference_qps: float | None = None
    reference_items_per_s: float | None = None
    reference_count: int = 0
    probe: KnobConfig | None = None
    probe_use: float | None = None
    probe_ms: float | None = None
    probe_count: int = 0
    probe_knob: Knob | None = None
    probe_step: int = 0
    focus_knob: Knob | None = None
    batch_direction: int = 0
    threshold_direction: int = 0
    batch_step: int = 0
    threshold_step: int = 0
    last_change_s: float | None = None
    slo_percentile: int | None = None
    slo_target_ms: float | None = None
    converged_qps: float | None = None
    converged_ms: float | None = None
    converged_items: float | None = None
    over_target_streak: int = 0
    drift_streak: int = 0
    decisions: int = 0
    trials: tuple[Trial, ...] = field(default_factory=tuple)

    def direction(self, knob: Knob) -> int:
        return self.batch_direction if knob == "batch" else self.threshold_direction

    def step(self, knob: Knob) -> int:
        return self.batch_step if knob == "batch" else self.threshold_step

    def with_knob(
        self, knob: Knob, *, step: int | None = None, direction: int | None = None
    ) -> TuningState:
        changes: dict[str, int] = {}
        if step is not None:
            changes[f"{knob}_step"] = step
        if direction is not None:
            changes[f"{knob}_direction"] = direction
        return replace(self, **changes)  # type: ignore[arg-type]

    def with_trial(self, trial: Trial, history_length: int) -> TuningState:
        return replace(self, trials=(*self.trials, trial)[-history_length:])

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "epoch": self.epoch,
            "incumbent": None if self.incumbent is None else self.incumbent.to_dict(),
            "referenceUse": self.reference_use,
            "referenceMs": self.reference_ms,
            "referenceQps": self.reference_qps,
            "referenceItemsPerS": self.reference_items_per_s,
            "referenceCount": self.reference_count,
            "probe": None if self.probe is None else self.probe.to_dict(),
            "probeUse": self.probe_use,
            "probeMs": self.probe_ms,
            "probeCount": self.probe_count,
            "probeKnob": self.probe_knob,
            "probeStep": self.probe_step,
            "focusKnob": self.focus_knob,
            "batchDirection": self.batch_direction,
            "thresholdDirection": self.threshold_direction,
            "batchStep": self.batch_step,
            "thresholdStep": self.threshold_step,
            "lastChangeS": self.last_change_s,
            "sloPercentile": self.slo_percentile,
            "sloTargetMs": self.slo_target_ms,
            "convergedQps": self.converged_qps,
            "convergedMs": self.converged_ms,
            "convergedItems": self.converged_items,
            "overTargetStreak": self.over_target_streak,
            "driftStreak": self.drift_streak,
            "decisions": self.decisions,
            "trials": [trial.to_dict() for trial in self.trials],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuningState:
        def config(key: str) -> KnobConfig | None:
            value = data.get(key)
            return None if value is None else KnobConfig.from_dict(value)

        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        def knob(key: str) -> Knob | None:
            value = data.get(key)
            return None if value is None else cast(Knob, str(value))

        percentile = data.get("sloPercentile")
        return cls(
            phase=cast(Phase, data.get("phase", "search")),
            epoch=int(data.get("epoch", 0)),
            incumbent=config("incumbent"),
            reference_use=number("referenceUse"),
            reference_ms=number("referenceMs"),
            reference_qps=number("referenceQps"),
            reference_items_per_s=number("referenceItemsPerS"),
            reference_count=int(data.get("referenceCount", 0)),
            probe=config("probe"),
            probe_use=number("probeUse"),
            probe_ms=number("probeMs"),
            probe_count=int(data.get("probeCount", 0)),
            probe_knob=knob("probeKnob"),
            probe_step=int(data.get("probeStep", 0)),
            focus_knob=knob("focusKnob"),
            batch_direction=int(data.get("batchDirection", 0)),
            threshold_direction=int(data.get("thresholdDirection", 0)),
            batch_step=int(data.get("batchStep", 0)),
            threshold_step=int(data.get("thresholdStep", 0)),
            last_change_s=number("lastChangeS"),
            slo_percentile=None if percentile is None else int(percentile),
            slo_target_ms=number("sloTargetMs"),
            converged_qps=number("convergedQps"),
            converged_ms=number("convergedMs"),
            converged_items=number("convergedItems"),
            over_target_streak=int(data.get("overTargetStreak", 0)),
            drift_streak=int(data.get("driftStreak", 0)),
            decisions=int(data.get("decisions", 0)),
            trials=tuple(Trial.from_dict(t) for t in data.get("trials", [])),
        )


def initial_state() -> TuningState:
    """State of a tuner that has seen nothing: the first valid observation becomes the baseline."""
    return TuningState()
