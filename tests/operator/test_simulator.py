"""The queueing simulator: exactness of its FIFO shortcut, queueing theory, routing, profiles,
capacity, and the CLI."""

from __future__ import annotations

import heapq
import json
import math
import random

import numpy as np
import pytest

from recsched_operator import simulate_cli
from recsched_operator.tuner import KnobConfig
from recsched_operator.tuner.simulation.capacity import CapacityModel, Scenario
from recsched_operator.tuner.simulation.engine import (
    ClusterShape,
    _serve_split_query,
    simulate_window,
)
from recsched_operator.tuner.simulation.profiles import (
    MAX_QUERY_ITEMS,
    PROFILE_DIR,
    ServiceProfile,
    load_profile,
    profile_names,
    synthetic_profile,
)
from recsched_operator.tuner.simulation.workload import (
    HEAVY_TAILED,
    LognormalComponent,
    SizeDistribution,
)

pytestmark = pytest.mark.timeout(60)

FIXED_64 = SizeDistribution("fixed64", (LognormalComponent(math.log(64), 0.0),))


def test_split_query_shortcut_equals_one_heap_operation_per_request() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        workers = rng.randint(1, 9)
        free = sorted(rng.uniform(0, 5) for _ in range(workers))
        arrival = rng.uniform(0, 4)
        full, full_s = rng.randint(0, 60), rng.uniform(0.05, 1.5)
        last_s = rng.uniform(0.01, full_s)
        heap, done, first = list(free), arrival, None
        heapq.heapify(heap)
        for index in range(full + 1):
            start = max(heapq.heappop(heap), arrival)
            first = start if first is None else first
            end = start + (full_s if index < full else last_s)
            done = max(done, end)
            heapq.heappush(heap, end)
        shortcut = list(free)
        first_start, shortcut_done = _serve_split_query(shortcut, arrival, full, full_s, last_s)
        assert shortcut_done == pytest.approx(done, abs=1e-9)
        assert first_start == pytest.approx(first, abs=1e-9)
        assert shortcut == pytest.approx(sorted(max(t, arrival) for t in heap), abs=1e-9)


def test_single_worker_matches_the_md1_mean_wait() -> None:
    # Fixed 64-item queries unsplit on one worker: an M/D/1 queue, mean wait rho / (2 mu (1 - rho)).
    profile = synthetic_profile()
    service_s = profile.cpu_request_s(64)
    qps = 0.7 / service_s
    result = simulate_window(
        profile, 64, 1025, ClusterShape(1, 1, 0), FIXED_64, qps, 60000, np.random.default_rng(3)
    )
    expected_wait_s = 0.7 / (2 * (1 / service_s) * (1 - 0.7))
    assert result.queue_wait_s.mean() == pytest.approx(expected_wait_s, rel=0.05)
    assert result.utilization("cpu") == pytest.approx(0.7, rel=0.03)


def test_queries_at_or_above_the_threshold_go_whole_to_the_gpu_pool() -> None:
    result = simulate_window(
        synthetic_profile(),
        32,
        256,
        ClusterShape(),
        HEAVY_TAILED,
        500.0,
        4000,
        np.random.default_rng(1),
    )
    assert np.array_equal(result.on_gpu, result.items >= 256)
    assert 0.0 < result.on_gpu.mean() < 0.5


def test_splitting_lowers_latency_of_large_queries_at_light_load() -> None:
    profile = synthetic_profile()
    rng_seed = 5
    whole, split = (
        simulate_window(
            profile,
            batch,
            1025,
            ClusterShape(1, 8, 0),
            HEAVY_TAILED,
            20.0,
            3000,
            np.random.default_rng(rng_seed),
        ).percentile_ms(95)
        for batch in (1024, 64)
    )
    assert whole is not None and split is not None and split < 0.5 * whole


def test_profile_interpolates_between_grid_points_in_log_space() -> None:
    profile = ServiceProfile("p", (1, 4), (1e-3, 4e-3), (2e-3, 2e-3))
    assert profile.cpu_request_s(1) == pytest.approx(1e-3)
    assert profile.cpu_request_s(2) == pytest.approx(2e-3)  # geometric midpoint of 1 and 4
    assert profile.cpu_request_s(16) == pytest.approx(16e-3)  # last slope extended, not clamped
    assert profile.gpu_query_s(MAX_QUERY_ITEMS) == pytest.approx(2e-3)


@pytest.mark.parametrize("name", profile_names())
def test_committed_profiles_are_measured_and_say_so(name: str) -> None:
    data = json.loads((PROFILE_DIR / f"{name}.json").read_text())
    assert data["model"] == name and data["scale"] == 0.01 and data["threads"] == 1
    assert data["machine"] and data["measured_at"] and data["torch"]
    assert data["gpu"]["device"] == "emulated-from-speedup-table"
    profile = load_profile(name)
    assert profile.batch_items == tuple(2**k for k in range(11))
    # A request of 1024 items costs more than one of 1 item, but far less than 1024 of them.
    assert profile.cpu_seconds[0] < profile.cpu_seconds[-1] < 1024 * profile.cpu_seconds[0]


def test_capacity_is_the_highest_load_within_target() -> None:
    scenario = Scenario(synthetic_profile(), ClusterShape(1, 8, 1), HEAVY_TAILED, 95, 20.0)
    model = CapacityModel.build(scenario, queries=3000)
    config = KnobConfig(64, 512)
    capacity = model.capacity_qps(config)
    assert capacity > 0
    assert model.latency_ms(config, capacity) <= 20.0
    assert model.latency_ms(config, capacity * 1.05) > 20.0


def test_simulate_cli_prints_the_trace_and_both_capacities_as_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = simulate_cli.main(
        ["--model", "rmc1", "--slo-ms", "20", "--seed", "3", "--decisions", "12", "--json"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["trace"]) == result["decisions"] == 12
    assert all(step["reason"] for step in result["trace"])
    assert result["optimumCapacityQps"] >= result["finalCapacityQps"] > 0
    assert result["capacityRatio"] == pytest.approx(
        result["finalCapacityQps"] / result["optimumCapacityQps"], abs=1e-3
    )
    assert {"final", "optimum", "decisionsToReach95", "decisionsToConverge"} <= set(result)


def test_simulate_cli_rejects_an_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate_cli.main(["--model", "nope", "--slo-ms", "5"]) == 2
    assert "no profile for model 'nope'" in capsys.readouterr().err
