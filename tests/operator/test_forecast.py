"""Recommend mode's simulator forecast: calibration on one observed window, the advice it gives,
and how the operator reports it.

Observations come from the simulator itself with known truth (a machine 1.5x slower than the
profile, 3 ms of HTTP per query), so each test checks the calibration recovers what was hidden.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from recsched_operator.recmodel.api import parse_spec
from recsched_operator.recmodel.config_document import ConfigDocument
from recsched_operator.reconcile.decision_status import decision_status
from recsched_operator.tuner import KnobConfig, Observation, SloTarget, TuningBounds
from recsched_operator.tuner import bridge as tuner_bridge
from recsched_operator.tuner.simulation import (
    CapacityModel,
    ClusterShape,
    Scenario,
    ServiceProfile,
    SimulatedService,
    load_profile,
)
from recsched_operator.tuner.simulation.forecast import NoForecast, advise, calibrate, fitted_sizes
from recsched_operator.tuner.simulation.workload import PAPER_LOGNORMAL, PRODUCTION_LIKE
from support.kube_emulator import merge_patch

SLOWER = 1.5
HTTP_S = 0.003
WORST = KnobConfig(1024, 1025)


def truth(model: str, gpu_pods: int, target_ms: float, sizes: Any = PRODUCTION_LIKE) -> Scenario:
    profile = load_profile(model).cpu_scaled(SLOWER)
    cluster = ClusterShape(1, 4, gpu_pods, query_overhead_s=HTTP_S)
    return Scenario(profile, cluster, sizes, 95, target_ms)


def observed(scenario: Scenario, config: KnobConfig, qps: float, noise: float) -> Observation:
    service = SimulatedService(scenario, qps, latency_noise=noise, utilization_noise=noise / 5)
    return service.observe(config, 0.0, 60.0, np.random.default_rng(7))


def test_fitted_sizes_recover_a_lognormal_from_its_mean_and_p95() -> None:
    mu, sigma = 5.1, 0.8
    mean, p95 = math.exp(mu + sigma**2 / 2), math.exp(mu + 1.6448536269514722 * sigma)
    assert fitted_sizes(mean, p95) == pytest.approx((mu, sigma))
    assert fitted_sizes(64.0, None) == (math.log(64.0), 0.0)  # unknown spread: every query 64
    assert fitted_sizes(64.0, 60.0)[1] == 0.0
    with pytest.raises(NoForecast, match="mean query size"):
        fitted_sizes(0.0, 10.0)


def test_calibration_recovers_the_machine_speed_and_the_fixed_latency() -> None:
    scenario = truth("rmc1", 0, 30.0, sizes=PAPER_LOGNORMAL)  # unclipped: the fit is exact
    slo = SloTarget(95, 30.0, 60)
    served = KnobConfig(64, 1025)
    observation = observed(scenario, served, 200.0, noise=0.0)
    model, calibration = calibrate(
        load_profile("rmc1"), ClusterShape(1, 4, 0), observation, served, slo
    )
    assert calibration.speed_factor == pytest.approx(SLOWER, rel=0.05)
    assert calibration.fixed_latency_ms == pytest.approx(HTTP_S * 1000, abs=1.0)
    assert model.latency_ms(served, 200.0) == pytest.approx(observation.p95_ms, rel=0.05)


@pytest.mark.parametrize(
    ("model", "gpu_pods", "target_ms"),
    [("rmc1", 0, 30.0), ("wnd", 0, 100.0), ("rmc1", 1, 30.0)],
)
def test_advice_from_the_worst_corner_is_within_5pct_of_the_true_optimum(
    model: str, gpu_pods: int, target_ms: float
) -> None:
    scenario = truth(model, gpu_pods, target_ms)
    bounds = TuningBounds(1, 1024, 1 if gpu_pods else 1025, 1025)
    true_model = CapacityModel.build(scenario)
    _, optimum_qps = true_model.optimum(bounds)
    observation = observed(scenario, WORST, 0.5 * optimum_qps, noise=0.10)
    advice = advise(
        load_profile(model),
        ClusterShape(1, 4, gpu_pods),
        observation,
        WORST,
        bounds,
        SloTarget(95, target_ms, 60),
    )
    assert true_model.capacity_qps(advice.config) >= 0.95 * optimum_qps, advice.describe()
    assert advice.calibration.speed_factor == pytest.approx(SLOWER, rel=0.1)


def test_serving_the_optimum_gets_no_change() -> None:
    scenario = truth("wnd", 0, 100.0)
    bounds = TuningBounds(1, 1024, 1025, 1025)
    best, best_qps = CapacityModel.build(scenario).optimum(bounds)
    observation = observed(scenario, best, 0.5 * best_qps, noise=0.0)
    advice = advise(
        load_profile("wnd"), ClusterShape(1, 4, 0), observation, best, bounds, scenario_slo()
    )
    assert advice.config == best
    assert "no change" in advice.describe()


def scenario_slo() -> SloTarget:
    return SloTarget(95, 100.0, 60)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cpu_utilization": None}, "no CPU pool utilisation"),
        ({"qps": None}, "no query rate"),
        ({"p95_ms": float("nan")}, "no p95"),
        ({"error": "prometheus down"}, "prometheus down"),
    ],
)
def test_an_observation_that_cannot_calibrate_says_what_is_missing(
    change: dict[str, Any], message: str
) -> None:
    scenario = truth("rmc1", 0, 30.0)
    observation = replace(observed(scenario, WORST, 100.0, noise=0.0), **change)
    with pytest.raises(NoForecast, match=message):
        calibrate(
            load_profile("rmc1"), ClusterShape(1, 4, 0), observation, WORST, SloTarget(95, 30, 60)
        )


def recommend_spec(model: str = "wnd") -> Any:
    return parse_spec(
        {
            "model": {"name": model, "scale": 0.01, "image": "recsched-pod:test"},
            "slo": {"targetMs": 100, "windowSeconds": 60, "minSamples": 100},
            "pools": {"cpu": {"replicas": 1, "workers": 4}},
            "tuning": {"mode": "recommend"},
        }
    )


def run_bridge(observation: Observation) -> Any:
    return tuner_bridge.decide(
        spec=recommend_spec(),
        current=ConfigDocument(generation=3, batch_size=1024, offload_threshold=1025, workers=4),
        raw_state=None,
        observation=observation,
        now_s=datetime.datetime(2026, 11, 26, tzinfo=datetime.UTC).timestamp(),
    )


def test_recommend_mode_reports_the_simulators_advice_and_changes_nothing() -> None:
    scenario = truth("wnd", 0, 100.0)
    outcome = run_bridge(observed(scenario, WORST, 25.0, noise=0.0))
    assert outcome.action == "recommend" and not outcome.changed
    assert (outcome.after_batch_items, outcome.after_threshold_items) == (1024, 1025)
    assert outcome.recommended_batch_items < 1024
    assert outcome.reason.startswith("recommend batch 1024->") and "simulator" in outcome.reason
    forecast = outcome.forecast
    assert forecast["served"]["batchSize"] == 1024
    assert forecast["best"]["batchSize"] == outcome.recommended_batch_items
    assert forecast["best"]["capacityQps"] > forecast["served"]["capacityQps"]
    status = decision_status(
        outcome,
        {},
        [],
        spec=recommend_spec(),
        now=datetime.datetime(2026, 11, 26, tzinfo=datetime.UTC),
        generation=1,
        history_limit=10,
    )
    assert status["recommended"]["forecast"] == forecast
    assert json.loads(json.dumps(forecast)) == forecast  # plain JSON types for the status
    assert status["phase"] == "Recommending"


def test_recommend_mode_without_enough_samples_gives_no_forecast() -> None:
    observation = replace(observed(truth("wnd", 0, 100.0), WORST, 25.0, noise=0.0), samples=20)
    outcome = run_bridge(observation)
    assert outcome.forecast is None
    earlier = {"recommended": {"batchSize": 256, "forecast": {"qps": 25.0}}}
    status = decision_status(
        outcome,
        earlier,
        [],
        spec=recommend_spec(),
        now=datetime.datetime(2026, 11, 26, tzinfo=datetime.UTC),
        generation=1,
        history_limit=10,
    )
    assert merge_patch(earlier, status)["recommended"] == {
        "batchSize": 1024,
        "offloadThreshold": 1025,
        "reason": outcome.reason,
    }  # the stale forecast is gone
    assert (outcome.recommended_batch_items, outcome.recommended_threshold_items) == (1024, 1025)


def test_a_model_without_a_profile_keeps_the_policys_advice_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        tuner_bridge,
        "load_profile",
        lambda name: (_ for _ in ()).throw(tuner_bridge.ProfileError(f"no profile for {name}")),
    )
    outcome = run_bridge(observed(truth("wnd", 0, 100.0), WORST, 25.0, noise=0.0))
    assert outcome.forecast is None
    assert "(no simulator forecast: no profile for wnd)" in outcome.reason


def test_cpu_scaled_profile_scales_cpu_times_only() -> None:
    profile = load_profile("rmc1")
    slower: ServiceProfile = profile.cpu_scaled(2.0)
    assert slower.cpu_request_s(100) == pytest.approx(2 * profile.cpu_request_s(100))
    assert slower.gpu_query_s(100) == profile.gpu_query_s(100)
    assert slower.source["cpu_factor"] == 2.0
