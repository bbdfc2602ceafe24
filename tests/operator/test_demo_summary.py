"""The demo's summary and report from made-up phases, decisions and series: which config each
phase served, how many decisions it took, its SLO attainment, the comparison with the starting
config, and the report's labels (an emulated GPU pool says so)."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from recsched_operator.local.demo_report import render_markdown
from recsched_operator.local.demo_summary import (
    PhaseMeasure,
    PhaseRecord,
    attainment,
    served_at,
    summarise_phases,
)
from recsched_operator.local.processes import exit_message

T0 = 1_800_000_000.0


def at(offset_s: float) -> str:
    moment = datetime.datetime.fromtimestamp(T0 + offset_s, datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


def decision(offset_s: float, before: tuple[int, int], after: tuple[int, int]) -> dict[str, Any]:
    return {
        "at": at(offset_s),
        "action": "probe" if before != after else "hold",
        "changed": before != after,
        "before_batch_items": before[0],
        "before_threshold_items": before[1],
        "after_batch_items": after[0],
        "after_threshold_items": after[1],
        "p95_ms": 50.0,
        "qps": 10.0,
        "reason": "because | reasons",
    }


PHASES = [
    PhaseRecord("start config", "before tuning", T0, T0 + 14, 10, "production", 100, False),
    PhaseRecord("steady", "tuner on", T0 + 14, T0 + 60, 10, "production", 100, True),
    PhaseRecord("load step", "x1.5", T0 + 60, T0 + 90, 15, "production", 100, True),
]
MEASURES = [
    PhaseMeasure(180.0, 175.0, 10.0, {"start": {"capacityQps": 6.0}}),
    PhaseMeasure(
        70.0, 120.0, 10.0, {"served": {"capacityQps": 14.0}, "start": {"capacityQps": 6.5}}
    ),
    PhaseMeasure(90.0, 95.0, 15.0, {"error": "no CPU pool utilisation observed"}),
]
DECISIONS = [
    decision(15, (1024, 1025), (256, 1025)),
    decision(27, (256, 1025), (256, 1025)),
    decision(40, (256, 1025), (256, 512)),
    decision(70, (256, 512), (128, 512)),
]
P95_SERIES = [
    (T0 + s, float(v)) for s, v in [(2, 190), (10, 170), (20, 150), (40, 90), (58, 60), (80, 95)]
]


def summary(phases: list[PhaseRecord] = PHASES) -> dict[str, Any]:
    return summarise_phases(
        phases, MEASURES, DECISIONS, P95_SERIES, (1024, 1025), {"percentile": 95, "windowS": 10}
    )


def test_each_phase_reports_the_config_served_at_its_end_and_its_decisions() -> None:
    rows = summary()["phases"]
    assert [(r["servedBatchSize"], r["servedOffloadThreshold"]) for r in rows] == [
        (1024, 1025),
        (256, 512),
        (128, 512),
    ]
    assert [(r["decisions"], r["changes"]) for r in rows] == [(0, 0), (3, 2), (1, 1)]
    assert rows[1]["configsTried"] == [
        {"batchSize": 256, "offloadThreshold": 512},
        {"batchSize": 256, "offloadThreshold": 1025},
    ]


def test_each_phase_compares_with_the_start_configs_measured_window_and_forecast() -> None:
    rows = summary()["phases"]
    assert all(r["startConfig"]["measuredP95Ms"] == 180.0 for r in rows)
    assert rows[1]["startConfig"]["forecastCapacityQps"] == 6.5
    assert rows[1]["forecast"]["served"]["capacityQps"] == 14.0
    assert rows[2]["startConfig"]["forecastCapacityQps"] is None
    assert [r["metTarget"] for r in rows] == [False, True, True]
    assert [r["p95Ms"] for r in rows] == [180.0, 70.0, 90.0]


def test_a_decision_at_a_phase_boundary_belongs_to_the_phase_it_was_taken_in() -> None:
    boundary = T0 + 14.0004  # the step ran 0.2 ms after the boundary; `at` reads 14.000 s
    phases = [
        PhaseRecord("start config", "", T0, boundary, 10, "production", 100, False),
        PhaseRecord("steady", "", boundary, T0 + 60, 10, "production", 100, True),
    ]
    at_boundary = [decision(14.0006, (4, 1025), (16, 1025))]
    at_boundary[0]["at"] = at(14.0)
    document = summarise_phases(phases, MEASURES[:2], at_boundary, P95_SERIES, (4, 1025), {})
    start, steady = document["phases"]
    assert (start["decisions"], start["servedBatchSize"]) == (0, 4)
    assert (steady["decisions"], steady["servedBatchSize"]) == (1, 16)


def test_attainment_is_the_share_of_sampled_windows_within_target() -> None:
    assert attainment(P95_SERIES, T0 + 14, T0 + 60, 100) == pytest.approx(2 / 3)
    assert attainment(P95_SERIES, T0, T0 + 14, 100) == 0.0
    assert attainment(P95_SERIES, T0 + 100, T0 + 110, 100) is None
    assert [r["sloAttainment"] for r in summary()["phases"]] == [0.0, 0.67, 1.0]


def test_both_knobs_moved_is_read_from_the_decisions() -> None:
    assert summary()["knobsMoved"] == {"batchSize": True, "offloadThreshold": True}
    assert served_at(DECISIONS, (1024, 1025), T0 + 5) == (1024, 1025)
    only_batch = summarise_phases(PHASES, MEASURES, DECISIONS[:1], P95_SERIES, (1024, 1025), {})
    assert only_batch["knobsMoved"] == {"batchSize": True, "offloadThreshold": False}


def test_an_interrupted_run_says_so_and_stays_json() -> None:
    cut = [
        *PHASES[:2],
        PhaseRecord("load step", "x1.5", T0 + 60, T0 + 65, 15, "p", 100, True, False),
    ]
    document = summary(cut)
    assert document["interrupted"] is True
    assert document["phases"][-1]["completed"] is False
    assert json.loads(json.dumps(document)) == document


def test_the_report_labels_an_emulated_gpu_pool_and_lists_every_phase() -> None:
    document = {**summary(), "gpuPool": "1 GPU pod(s), EMULATED (nvidia-h200 profile)"}
    document["cpuPool"] = "1 pod(s) x 2 workers"
    text = render_markdown("demo", document, DECISIONS, [{"workload": "constant", "ok": 3}])
    assert "**emulated**" in text
    for name in ("start config", "steady", "load step"):
        assert f"| {name} |" in text
    assert "B=256, T=512" in text and "B=1024, T=off" in text
    assert "because / reasons" in text  # a pipe in a reason does not break the table
    assert "no forecast (no CPU pool utilisation observed)" in text


def test_a_busy_port_is_reported_in_one_line_with_what_to_do(tmp_path: Any) -> None:
    tail = (
        "Traceback...\nOSError: [Errno 98] error while attempting to bind on address "
        "('127.0.0.1', 8000): address already in use\n"
    )
    message = exit_message("router-0", 1, tmp_path / "router-0.log", tail)
    assert "\n" not in message
    assert "already in use" in message and "stop that one" in message
    other = exit_message("cpu-0", 3, tmp_path / "cpu-0.log", "boom\n")
    assert other.startswith("cpu-0 exited with code 3") and "boom" in other
