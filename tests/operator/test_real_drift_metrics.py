"""The real-loop drift figures (`local.drift`): phases of a load step and an SLO edit (also as
`recsched-operator local --scenario load-step|slo-edit`), and the decisions, seconds and
violation seconds read from a tuner's decision log.

`bench/tuner_real_drift.py` reports these from real runs; here made-up logs pin the definitions:
what counts as recovered (a window within target lying wholly after the change), what a window
straddling the change counts for, and which target judges which window.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from recsched_operator.local.cli import add_parser, scenario_phases
from recsched_operator.local.drift import (
    LOAD_STEP,
    SLO_EDIT,
    DriftOutcome,
    Window,
    drift_outcome,
    drift_phases,
    first_window_s,
    windows_from_decisions,
)
from recsched_operator.local.scenario import DemoLoad, demo_phases

WINDOW_S = 10.0
INTERVAL_S = 11.0
CHANGE_S = 1000.0


def series(p95s: list[float], first_at_s: float = CHANGE_S - 39.0) -> list[Window]:
    """Windows every 11 s; with the default start, the 5th is the first after the change
    (at +5 s, straddling it) and the 6th the first wholly after it (at +16 s)."""
    return [
        Window(first_at_s + INTERVAL_S * i, p95, 20.0, (256, 1025)) for i, p95 in enumerate(p95s)
    ]


def outcome(windows: list[Window], before_ms: float = 50.0, after_ms: float = 50.0) -> DriftOutcome:
    return drift_outcome(
        windows,
        change_s=CHANGE_S,
        target_before_ms=before_ms,
        target_after_ms=after_ms,
        window_s=WINDOW_S,
        interval_s=INTERVAL_S,
    )


def test_load_step_phases_hold_the_start_then_settle_then_step_the_load() -> None:
    held, settle, step = drift_phases(
        LOAD_STEP, qps=22.0, sizes="production", window_s=10.0, settle_s=99.0, after_s=121.0
    )
    assert (held.tuning, settle.tuning, step.tuning) == (False, True, True)
    assert held.duration_s == 14.0
    assert (settle.qps, step.qps) == (22.0, 33.0)
    assert (settle.duration_s, step.duration_s) == (99.0, 121.0)
    assert step.target_ms is None


def test_slo_edit_phase_writes_the_new_target_at_unchanged_load() -> None:
    *_, edit = drift_phases(
        SLO_EDIT, qps=22.0, sizes="production", window_s=10.0, settle_s=99.0, after_s=121.0,
        edited_target_ms=25.0,
    )  # fmt: skip
    assert (edit.name, edit.qps, edit.target_ms) == (SLO_EDIT, 22.0, 25.0)


def test_drift_phases_refuse_an_unknown_kind_or_an_edit_without_a_target() -> None:
    with pytest.raises(ValueError, match="drift kind"):
        drift_phases("size shift", qps=1, sizes="production", window_s=10, settle_s=1, after_s=1)
    with pytest.raises(ValueError, match="edited_target_ms"):
        drift_phases(SLO_EDIT, qps=1, sizes="production", window_s=10, settle_s=1, after_s=1)


def test_no_window_over_target_after_the_change_is_met_at_zero() -> None:
    result = outcome(series([30, 30, 30, 30, 40, 45, 40, 35]))
    assert (result.met_after_decisions, result.met_after_s) == (0, 0.0)
    assert result.violation_after_s == 0
    assert result.windows_after == 4


def test_recovery_counts_decisions_after_the_change_before_the_first_window_back_in_target() -> (
    None
):
    # After the change: +5 s 45 (straddles), +16 s 70, +27 s 65, +38 s 48 (back), +49 s 60.
    result = outcome(series([30, 30, 30, 30, 45, 70, 65, 48, 60]))
    assert result.met_after_decisions == 3
    assert result.met_after_s == pytest.approx(38.0)
    assert result.violation_after_s == 3 * INTERVAL_S  # 70, 65 and the later 60
    assert result.violation_run_s == 3 * INTERVAL_S


def test_a_window_straddling_the_change_counts_as_a_violation_but_not_as_recovery() -> None:
    # The change lands mid-window: the straddling window at +5 s is over, the next (+16 s)
    # is the first one that can show recovery.
    result = outcome(series([30, 30, 30, 30, 80, 40]))
    assert result.violation_after_s == INTERVAL_S
    assert result.met_after_decisions == 1
    assert result.met_after_s == pytest.approx(16.0)


def test_a_window_over_target_after_the_slo_was_met_counts_only_as_violation() -> None:
    # Met from the first window after the change; a probe breaks it later for one window.
    result = outcome(series([30, 30, 30, 30, 40, 40, 40, 90, 40]))
    assert (result.met_after_decisions, result.met_after_s) == (0, 0.0)
    assert result.violation_after_s == INTERVAL_S


def test_never_back_in_target_is_none() -> None:
    result = outcome(series([30, 30, 30, 30, 70, 70, 70]))
    assert result.met_after_decisions is None and result.met_after_s is None
    assert result.violation_after_s == 3 * INTERVAL_S


def test_windows_before_the_change_are_judged_on_the_old_target_and_after_on_the_new() -> None:
    # SLO halved 50 -> 25 ms: 40 ms was fine before and is a violation after.
    result = outcome(series([60, 40, 40, 40, 40, 40, 20]), before_ms=50.0, after_ms=25.0)
    assert result.violation_after_s == 2 * INTERVAL_S
    assert result.violation_run_s == 3 * INTERVAL_S  # plus the 60 ms window before the change
    assert result.met_after_decisions == 2
    assert result.met_after_s == pytest.approx(27.0)
    assert result.p95_before_ms == 40.0


def test_a_decision_on_the_change_tick_judged_pre_change_traffic_and_counts_before() -> None:
    # The settle phase's last step and the phase switch share a tick: the decision 0.2 s after
    # the change saw only pre-change traffic (at the old target it is fine).
    windows = series([30, 30, 45], first_at_s=CHANGE_S - 21.8) + series([30], CHANGE_S + 11.2)
    result = outcome(windows, before_ms=50.0, after_ms=25.0)
    assert result.windows_after == 1
    assert result.violation_run_s == INTERVAL_S  # the 30 ms window after the edit, over 25
    assert result.met_after_decisions is None


def test_configs_at_the_change_and_at_the_end_come_from_the_decisions() -> None:
    windows = [
        Window(CHANGE_S - 11.0, 30.0, 20.0, (256, 1025), converged=True),
        Window(CHANGE_S + 11.0, 70.0, 30.0, (512, 1025)),
        Window(CHANGE_S + 22.0, 45.0, 30.0, (512, 1025)),
    ]
    result = outcome(windows)
    assert result.config_before == (256, 1025) and result.converged_at_change
    assert result.config_after == (512, 1025)


def test_decision_log_records_become_time_ordered_windows() -> None:
    record: dict[str, Any] = {
        "after_batch_items": 512,
        "after_threshold_items": 1025,
        "converged": True,
        "qps": 21.5,
    }
    decisions = [
        {**record, "at": "2026-12-03T15:00:11.000+00:00", "p95_ms": None},
        {**record, "at": "2026-12-03T15:00:00.000+00:00", "p95_ms": 31.5},
    ]
    windows = windows_from_decisions(decisions)
    assert [w.p95_ms for w in windows] == [31.5, None]
    assert windows[0].config == (512, 1025) and windows[0].converged
    assert first_window_s(windows) == windows[0].at_s
    assert windows[1].at_s - windows[0].at_s == pytest.approx(11.0)


def test_first_window_of_an_empty_log_is_an_error() -> None:
    with pytest.raises(ValueError, match="no decisions"):
        first_window_s([])


def local_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="recsched-operator")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["local", "recmodel.yaml", *argv])


def test_cli_load_step_scenario_holds_one_window_then_settles_then_steps() -> None:
    args = local_args(
        "--scenario", "load-step", "--duration-s", "234", "--load-qps", "22", "--settle-s", "99"
    )
    held, settle, step = scenario_phases(args, window_s=10.0, target_ms=50.0)
    assert [p.duration_s for p in (held, settle, step)] == [14.0, 99.0, 121.0]
    assert (held.tuning, settle.qps, step.qps) == (False, 22.0, 33.0)


def test_cli_slo_edit_scenario_halves_the_manifest_target_unless_given() -> None:
    args = local_args("--scenario", "slo-edit", "--duration-s", "114", "--load-qps", "22")
    *_, settle, edit = scenario_phases(args, window_s=10.0, target_ms=50.0)
    assert (settle.duration_s, edit.duration_s, edit.target_ms) == (50.0, 50.0, 25.0)
    args = local_args(
        "--scenario", "slo-edit", "--duration-s", "114", "--load-qps", "22",
        "--edit-target-ms", "30",
    )  # fmt: skip
    assert scenario_phases(args, window_s=10.0, target_ms=50.0)[-1].target_ms == 30.0


def test_cli_drift_scenario_too_short_for_a_window_each_side_is_refused() -> None:
    args = local_args("--scenario", "load-step", "--duration-s", "30", "--load-qps", "22")
    with pytest.raises(ValueError, match="too short"):
        scenario_phases(args, window_s=10.0, target_ms=50.0)


def test_cli_demo_scenario_is_still_the_demo_phases() -> None:
    args = local_args("--scenario", "demo", "--duration-s", "150", "--load-qps", "20")
    expected = demo_phases(150.0, 10.0, DemoLoad(qps=20.0))
    assert scenario_phases(args, window_s=10.0, target_ms=30.0) == expected
