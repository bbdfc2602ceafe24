"""What the simulator forecasts for a phase of a local run: the served and the starting config.

Recommend mode's calibration (`simulation.forecast.calibrate`: the machine's speed from the pods'
compute histogram, the fixed latency per query, a lognormal fitted to the observed sizes), applied
to the last window of a phase, then asked for the capacity (highest QPS within the SLO) of two
configs: the one served at the phase's end and the run's starting config. The observation is read
from the run's Prometheus after the fact (it keeps the data), so the run loop never waits on the
simulator.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from recsched_operator.recmodel.api import RecModelSpec
from recsched_operator.recmodel.naming import Owner
from recsched_operator.tuner.knobs import KnobConfig
from recsched_operator.tuner.observation import Observation
from recsched_operator.tuner.settings import SloTarget
from recsched_operator.tuner.simulation.engine import ClusterShape
from recsched_operator.tuner.simulation.forecast import NoForecast, calibrate
from recsched_operator.tuner.simulation.profiles import (
    ProfileError,
    load_profile,
    with_measured_gpu,
)

logger = logging.getLogger(__name__)


def observe_window(prometheus_url: str, owner: Owner, slo: SloTarget, at_s: float) -> Observation:
    """The tuner's observation of the `slo.window_s` seconds ending at `at_s`."""
    from recsched_operator.tuner.prometheus_source import PrometheusSource

    source = PrometheusSource(prometheus_url, timeout_s=10.0)
    return source.observe(owner.name, owner.namespace, slo, at_s)


def forecast_capacities(
    spec: RecModelSpec,
    observation: Observation,
    slo: SloTarget,
    served: KnobConfig,
    start: KnobConfig,
    workers: int,
    gpu_profile: Path | None = None,
) -> dict[str, Any]:
    """{"served": {...}, "start": {...}, "calibration": text} with capacities in QPS, or
    {"error": why} when the window cannot calibrate the simulator. GPU times are the model
    profile's (the paper's speedups) unless `gpu_profile` gives measured ones."""
    try:
        profile = load_profile(spec.model.name)
        if gpu_profile is not None:
            profile = with_measured_gpu(profile, gpu_profile)
        cluster = ClusterShape(spec.pools.cpu.replicas, workers, spec.pools.gpu.replicas)
        model, calibration = calibrate(profile, cluster, observation, served, slo)
        qps = observation.qps or 0.0

        def entry(config: KnobConfig) -> dict[str, Any]:
            return {
                **config.to_dict(),
                "capacityQps": round(model.capacity_qps(config), 1),
                "predictedP95Ms": _rounded(model.latency_ms(config, qps)),
            }

        return {
            "served": entry(served),
            "start": entry(start),
            "atQps": round(qps, 1),
            "calibration": calibration.describe(),
            "gpuTimes": str(profile.source.get("gpu_device", "the model profile's")),
        }
    except (NoForecast, ProfileError, ValueError) as error:
        logger.info("no simulator forecast: %s", error)
        return {"error": str(error)}


def _rounded(value: float) -> float | None:
    return round(value, 1) if math.isfinite(value) else None


def phase_p95_ms(prometheus_url: str, owner: Owner, start_s: float, end_s: float) -> float | None:
    """p95 at the router over a whole phase (every query it answered in [start_s, end_s])."""
    from prometheus_api_client import PrometheusConnect

    span_ms = max(round((end_s - start_s) * 1000), 1000)
    sel = f'recmodel="{owner.name}",namespace="{owner.namespace}"'
    query = (
        "1000 * histogram_quantile(0.95, sum by (le) "
        f"(increase(recsched_router_query_duration_seconds_bucket{{{sel}}}[{span_ms}ms])))"
    )
    client = PrometheusConnect(url=prometheus_url, disable_ssl=True)
    result = client.custom_query(query, params={"time": f"{end_s:.3f}"})
    if not result:
        return None
    value = float(result[0]["value"][1])
    return value if math.isfinite(value) else None
