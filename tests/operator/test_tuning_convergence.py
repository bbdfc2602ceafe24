"""Issue 5's simulator floor, on a representative subset fast enough for CI.

From the grid corner of lowest capacity, with 10% lognormal noise on observed latencies (2% on
utilisations, a counter rate) at 75% of the grid optimum's capacity, the tuner reaches a config
with >= 95% of the optimum's capacity within 15 decisions, and after converging never lets p95
exceed the target for more than 2 intervals in a row. One model per bottleneck class (embedding,
MLP, attention) and per corner kind (GPU pool swamped at T = 32, or CPUs at B = 1), both SLOs
between them; test_tuning_study.py covers one case per factor level of issue 15's wide study,
and `bench/tuner_convergence.py` runs all of it (8 models x SLOs x percentiles x size mixes x
loads x clusters, sampled, 3 seeds) into docs/benchmarks/tuner.md.
"""

from __future__ import annotations

import pytest

from recsched_operator.tuner import SloTarget, TuningSettings
from recsched_operator.tuner.simulation.capacity import CapacityModel, Scenario
from recsched_operator.tuner.simulation.engine import ClusterShape
from recsched_operator.tuner.simulation.profiles import load_profile
from recsched_operator.tuner.simulation.tuning_run import (
    SimulatedService,
    evaluate_run,
    run_tuner,
    worst_corner,
)
from recsched_operator.tuner.simulation.workload import HEAVY_TAILED
from support.tuning import WIDE_BOUNDS as BOUNDS

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("model", "target_per_largest_request"),
    [("rmc1", 0.5), ("wnd", 0.5), ("dien", 1.5), ("mtwnd", 1.5)],
)
def test_tuner_reaches_95_percent_of_the_grid_optimum_from_the_worst_corner(
    model: str, target_per_largest_request: float
) -> None:
    profile = load_profile(model)
    # SLOs scale with the model: a fraction of one worker's time for a 1024-item request.
    target_ms = target_per_largest_request * profile.cpu_request_s(1024) * 1000
    scenario = Scenario(profile, ClusterShape(), HEAVY_TAILED, 95, target_ms)
    capacity = CapacityModel.build(scenario, seed=0)
    _, optimum_qps = capacity.optimum(BOUNDS)
    start = worst_corner(capacity, BOUNDS)
    assert capacity.capacity_qps(start) < 0.5 * optimum_qps
    slo = SloTarget(percentile=95, target_ms=target_ms, window_s=30.0)
    service = SimulatedService(scenario, qps=0.75 * optimum_qps, latency_noise=0.10)
    run = run_tuner(service, start, BOUNDS, slo, TuningSettings(), intervals=30, seed=1)
    score = evaluate_run(run, capacity, BOUNDS, slo)
    trace = "\n".join(f"{s.index} {s.action}: {s.reason}" for s in run.steps)
    assert score.reached_at is not None and score.reached_at <= 15, trace
    assert score.final_ratio >= 0.95, trace
    assert score.converged_at is not None, trace
    assert score.longest_violation_after_converging <= 2, trace
