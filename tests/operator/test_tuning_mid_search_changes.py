"""Ties kept on two windows, and changes that arrive while a search is still running (issue 15).

Keeping a probe whose two windows still lean better (inside the noise band) lets the search
reach the optimum of flat capacity curves without a late second look; it also makes searches on
flat landscapes longer, so a change can arrive in mid-search. Two rules make that safe, as a
load step in mid-search already was: a tighter SLO the incumbent meets with headroom settles on
it, and an incumbent measured within the target that now breaks it at the same load is
re-measured from scratch (its old windows describe a cluster that is gone: a GPU pod lost).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from recsched_operator.tuner import (
    KnobConfig,
    Observation,
    SloTarget,
    TuningSettings,
    decide_next_config,
)
from recsched_operator.tuner.objective import capacity_use
from recsched_operator.tuner.settings import TuningMode
from recsched_operator.tuner.state import TuningState
from support.tuning import SLO_P95_50MS as SLO
from support.tuning import WIDE_BOUNDS as BOUNDS

pytestmark = pytest.mark.timeout(30)

SETTINGS = TuningSettings()
INCUMBENT = KnobConfig(64, 128)


def window(cpu_utilization: float, p95_ms: float = 20.0, **fields: object) -> Observation:
    base: dict[str, object] = {
        "at_s": 0.0,
        "qps": 1000.0,
        "p95_ms": p95_ms,
        "p99_ms": p95_ms * 1.5,
        "samples": 30000.0,
        "cpu_utilization": cpu_utilization,
        "gpu_utilization": 0.1,
    }
    base.update(fields)
    return Observation(**base)  # type: ignore[arg-type]


def searching(reference_use: float, reference_ms: float = 20.0) -> TuningState:
    return TuningState(
        epoch=1,
        incumbent=INCUMBENT,
        reference_use=reference_use,
        reference_ms=reference_ms,
        reference_qps=1000.0,
        reference_count=3,
        slo_percentile=SLO.percentile,
        slo_target_ms=SLO.target_ms,
    )


@pytest.mark.parametrize(("second_utilization", "kept"), [(0.59, True), (0.62, False)])
def test_a_tie_that_still_leans_better_on_the_average_of_two_windows_is_kept(
    second_utilization: float, kept: bool
) -> None:
    reference = capacity_use(window(0.6), SLO, SETTINGS) or 0.0
    first = capacity_use(window(0.59), SLO, SETTINGS) or 0.0
    probe = KnobConfig(128, 128)
    state = replace(
        searching(reference),
        probe=probe,
        probe_knob="batch",
        probe_step=1,
        probe_use=first,
        probe_ms=20.0,
        probe_count=1,
        last_change_s=0.0,
    )
    observation = window(second_utilization, batch_size_items=128, offload_threshold_items=128)
    decision, after = decide_next_config(
        observation, probe, state, BOUNDS, SLO, SETTINGS, TuningMode.AUTO, 100.0
    )
    if kept:
        assert "kept batch 64->128" in decision.reason and after.incumbent == probe
    else:
        assert decision.action == "rollback" and after.incumbent == INCUMBENT


@pytest.mark.parametrize(("p95_ms", "settled"), [(30.0, True), (45.0, False)])
def test_a_tighter_slo_in_mid_search_settles_on_an_incumbent_that_keeps_its_headroom(
    p95_ms: float, settled: bool
) -> None:
    # 50 -> 40 ms while searching: 30 ms keeps 80% of the new target, 45 ms does not.
    state = searching(capacity_use(window(0.6), SLO, SETTINGS) or 0.0)
    tighter = SloTarget(percentile=95, target_ms=40.0, window_s=30.0)
    decision, after = decide_next_config(
        window(0.6, p95_ms=p95_ms), INCUMBENT, state, BOUNDS, tighter, SETTINGS, "auto", 100.0
    )
    assert after.slo_target_ms == 40.0
    if settled:
        assert decision.action == "hold" and "staying at" in decision.reason
        assert after.phase == "converged" and after.epoch == state.epoch
    else:
        assert decision.action == "retune" and after.epoch == state.epoch + 1


@pytest.mark.parametrize(("p95_ms", "reset"), [(900.0, True), (40.0, False)])
def test_an_incumbent_that_breaks_the_target_it_met_is_re_measured_not_averaged(
    p95_ms: float, reset: bool
) -> None:
    # A GPU pod lost in mid-search: the incumbent's old windows (20 ms) no longer describe it;
    # folded into a geometric mean they kept a reference every probe looked worse than.
    reference = capacity_use(window(0.6), SLO, SETTINGS) or 0.0
    state = searching(reference)
    now = window(1.4 if reset else 0.62, p95_ms=p95_ms)
    measured = capacity_use(now, SLO, SETTINGS) or 0.0
    _, after = decide_next_config(
        now, INCUMBENT, state, BOUNDS, SLO, SETTINGS, TuningMode.AUTO, 100.0
    )
    if reset:
        assert after.reference_ms == p95_ms and after.reference_use == measured
    else:
        assert after.reference_ms is not None and 20.0 < after.reference_ms < p95_ms
