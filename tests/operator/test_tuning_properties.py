"""Properties of the tuning policy over arbitrary inputs (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsched_operator.tuner import (
    KnobConfig,
    Observation,
    SloTarget,
    Trial,
    TuningMode,
    TuningSettings,
    TuningState,
    decide_next_config,
    initial_state,
)
from support.tuning import WIDE_BOUNDS as BOUNDS

pytestmark = pytest.mark.timeout(60)

finite = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
maybe_finite = st.none() | finite
powers = st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1025])
configs = st.builds(KnobConfig, batch_size=powers, offload_threshold=powers)
trials = st.builds(
    Trial,
    config=configs,
    use=finite,
    latency_ms=finite,
    qps=finite,
    verdict=st.sampled_from(["better", "worse", "tie", "broke-slo"]),
    at_s=finite,
    epoch=st.integers(0, 1000),
)
states = st.builds(
    TuningState,
    phase=st.sampled_from(["search", "converged"]),
    epoch=st.integers(0, 1000),
    incumbent=st.none() | configs,
    reference_use=maybe_finite,
    reference_ms=maybe_finite,
    reference_qps=maybe_finite,
    reference_items_per_s=maybe_finite,
    reference_count=st.integers(0, 10),
    probe=st.none() | configs,
    probe_use=maybe_finite,
    probe_ms=maybe_finite,
    probe_count=st.integers(0, 3),
    probe_knob=st.none() | st.sampled_from(["batch", "threshold"]),
    probe_step=st.integers(0, 4),
    focus_knob=st.none() | st.sampled_from(["batch", "threshold"]),
    batch_direction=st.sampled_from([-1, 0, 1]),
    threshold_direction=st.sampled_from([-1, 0, 1]),
    batch_step=st.integers(0, 4),
    threshold_step=st.integers(0, 4),
    last_change_s=maybe_finite,
    slo_percentile=st.none() | st.sampled_from([95, 99]),
    slo_target_ms=maybe_finite,
    converged_qps=maybe_finite,
    converged_ms=maybe_finite,
    converged_items=maybe_finite,
    over_target_streak=st.integers(0, 5),
    drift_streak=st.integers(0, 5),
    decisions=st.integers(0, 10**6),
    trials=st.lists(trials, max_size=20).map(tuple),
)
observations = st.builds(
    Observation,
    at_s=finite,
    qps=st.none() | st.floats(min_value=0.0, max_value=1e5),
    p95_ms=st.none() | st.floats(min_value=0.0, max_value=1e6),
    p99_ms=st.none() | st.floats(min_value=0.0, max_value=1e6),
    samples=st.floats(min_value=0.0, max_value=1e6),
    cpu_p95_ms=maybe_finite,
    gpu_p95_ms=maybe_finite,
    cpu_utilization=st.none() | st.floats(min_value=0.0, max_value=100.0),
    gpu_utilization=st.none() | st.floats(min_value=0.0, max_value=100.0),
    rejected_fraction=st.none() | st.floats(min_value=0.0, max_value=1.0),
    mean_query_items=st.none() | st.floats(min_value=1.0, max_value=1024.0),
    error=st.none() | st.text(max_size=20),
)
SLO = SloTarget(percentile=95, target_ms=35.0, window_s=30.0)


@given(states)
def test_any_state_round_trips_exactly_through_json(state: TuningState) -> None:
    assert TuningState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


@settings(max_examples=150, deadline=None)
@given(
    st.lists(observations, min_size=1, max_size=12),
    configs,
    st.sampled_from(list(TuningMode)),
)
def test_decisions_stay_in_bounds_and_recommend_or_off_never_change_the_config(
    sequence: list[Observation], start: KnobConfig, mode: TuningMode
) -> None:
    state, config, now_s = initial_state(), BOUNDS.clamp(start), 0.0
    for observation in sequence:
        now_s += 40.0
        decision, state = decide_next_config(
            observation, config, state, BOUNDS, SLO, TuningSettings(), mode, now_s
        )
        assert decision.reason
        assert BOUNDS.contains(decision.config)
        assert decision.changed == (decision.config != config)
        if mode is not TuningMode.AUTO:
            assert decision.config == config
        assert TuningState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
        config = decision.config
