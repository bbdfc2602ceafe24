"""Sweeps: push each config through `PUT /admin/config`, then measure its capacity (I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from recsched_loadtest.capacity import TrialReporter, TrialSettings, measure_capacity
from recsched_loadtest.capacity_search import CapacityPolicy
from recsched_loadtest.oip_client import push_config, wait_until_ready
from recsched_loadtest.signature import ModelSignature
from recsched_loadtest.sweep_plan import SweepConfig, SweepPoint
from recsched_loadtest.transports import InferTransport
from recsched_loadtest.workload import WorkloadSpec


async def run_sweep(
    base_url: str,
    token: str | None,
    transport: InferTransport,
    signature: ModelSignature,
    spec: WorkloadSpec,
    policy: CapacityPolicy,
    settings: TrialSettings,
    configs: list[SweepConfig],
    settle_s: float = 1.0,
    reporter_for: Callable[[SweepConfig], TrialReporter | None] = lambda _config: None,
) -> list[SweepPoint]:
    points = []
    for config in configs:
        applied = await push_config(base_url, token, config.knobs)
        # Pods apply a config without restarting, but give new workers a moment to start.
        await asyncio.sleep(settle_s)
        await wait_until_ready(base_url)
        result = await measure_capacity(
            transport, signature, spec, policy, settings, reporter_for(config)
        )
        points.append(SweepPoint(config, applied, result))
    return points
