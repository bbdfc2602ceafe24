"""JSON and CSV files for capacity results and sweeps.

File formats are part of the tool's interface (later issues read `sweep.json`), so they are written
in one place: `sweep.json` (everything), `sweep.csv` (one row per config), `curve.csv` (one row per
trial: the p95-vs-offered-load curve).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from recsched_loadtest.capacity_search import CapacityResult, RepeatSummary
from recsched_loadtest.sweep_plan import KNOWN_KNOBS, SweepPoint


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


def capacity_result_json(result: CapacityResult) -> dict[str, Any]:
    """Strict JSON (no NaN/Infinity): an unmeasurable p95 becomes null."""
    document: dict[str, Any] = _finite_or_none(asdict(result))
    return document


def repeated_capacity_json(results: list[CapacityResult], summary: RepeatSummary) -> dict[str, Any]:
    """One search: its result as before, plus `repeats`. K searches: the median capacity at the
    top (`converged` only if all did), each search under `runs`, the spread under `repeats`."""
    repeats = _finite_or_none(asdict(summary))
    if len(results) == 1:
        return {**capacity_result_json(results[0]), "repeats": repeats}
    return {
        "capacity_qps": summary.median_qps,
        "converged": all(result.converged for result in results),
        "repeats": repeats,
        "runs": [capacity_result_json(result) for result in results],
    }


def write_sweep_files(out_dir: Path, points: list[SweepPoint], meta: dict[str, Any]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep_json = out_dir / "sweep.json"
    document = {
        **meta,
        "results": [
            {
                "label": point.config.label,
                "knobs": point.config.knobs,
                "applied_config": point.applied,
                **capacity_result_json(point.result),
            }
            for point in points
        ],
    }
    sweep_json.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")

    sweep_csv = out_dir / "sweep.csv"
    with sweep_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["label", "generation", *KNOWN_KNOBS, "capacity_qps", "lo_qps", "hi_qps", "converged"]
        )
        for point in points:
            result = point.result
            writer.writerow(
                [
                    point.config.label,
                    point.applied.get("generation", ""),
                    *(point.applied.get(knob, "") for knob in KNOWN_KNOBS),
                    f"{result.capacity_qps:.6g}",
                    "" if result.lo_qps is None else f"{result.lo_qps:.6g}",
                    "" if result.hi_qps is None else f"{result.hi_qps:.6g}",
                    result.converged,
                ]
            )

    curve_csv = out_dir / "curve.csv"
    with curve_csv.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "label",
                "offered_qps",
                "achieved_qps",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "error_ratio",
                "queries",
                "passed",
                "stopped_early",
            ]
        )
        for point in points:
            for trial in point.result.curve:
                writer.writerow(
                    [
                        point.config.label,
                        f"{trial.offered_qps:.6g}",
                        f"{trial.achieved_qps:.6g}",
                        *(
                            "" if not math.isfinite(value) else f"{value:.6g}"
                            for value in (trial.p50_ms, trial.p95_ms, trial.p99_ms)
                        ),
                        f"{trial.error_ratio:.6g}",
                        trial.queries,
                        trial.passed,
                        trial.stopped_early,
                    ]
                )
    return [sweep_json, sweep_csv, curve_csv]
