"""The simulator's opt-in per-item latency (`ClusterShape.query_overhead_per_item_s`, issue 13
section 2): a query of N items waits N x that much longer end to end, its workers are not held
for it (queueing is unchanged), and at 0, the default, every latency is what it was."""

from __future__ import annotations

import numpy as np
import pytest

from recsched_operator.tuner.simulation.engine import ClusterShape, WindowResult, simulate_queries
from recsched_operator.tuner.simulation.profiles import synthetic_profile
from recsched_operator.tuner.simulation.workload import HEAVY_TAILED

pytestmark = pytest.mark.timeout(60)

PER_ITEM_S = 1e-5


def window(cluster: ClusterShape, qps: float = 400.0) -> WindowResult:
    rng = np.random.default_rng(3)
    items = HEAVY_TAILED.draw(rng, 3000)
    arrivals = np.cumsum(rng.exponential(1 / qps, size=items.size))
    return simulate_queries(synthetic_profile("p"), 64, 1025, cluster, arrivals, items, qps)


def test_each_query_waits_its_items_times_the_per_item_latency_on_top() -> None:
    base = window(ClusterShape(1, 4, 0, query_overhead_s=0.002))
    slower = window(
        ClusterShape(1, 4, 0, query_overhead_s=0.002, query_overhead_per_item_s=PER_ITEM_S)
    )
    np.testing.assert_allclose(slower.latency_s - base.latency_s, base.items * PER_ITEM_S)


def test_per_item_latency_holds_no_worker() -> None:
    base = window(ClusterShape(1, 4, 0))
    slower = window(ClusterShape(1, 4, 0, query_overhead_per_item_s=PER_ITEM_S))
    np.testing.assert_array_equal(slower.queue_wait_s, base.queue_wait_s)
    assert slower.utilization("cpu") == base.utilization("cpu")


def test_zero_per_item_latency_is_todays_simulator_bit_for_bit() -> None:
    default = window(ClusterShape(1, 4, 0, query_overhead_s=0.002))
    explicit = window(ClusterShape(1, 4, 0, query_overhead_s=0.002, query_overhead_per_item_s=0))
    np.testing.assert_array_equal(default.latency_s, explicit.latency_s)
    assert ClusterShape().query_overhead_per_item_s == 0.0
