"""bench/real_capacity.py's latency model: the latency a query spends outside its worker is
fitted per query and per item on lone queries (client latency minus the pod's forward time), never
below 0, and handed to the simulator; the previous method (one constant from the mix's mean) stays
available so both are judged on the same runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from real_capacity import WHOLE_QUERIES, searched_configs  # noqa: E402
from real_capacity_calibration import cluster_of, item_overhead, overheads  # noqa: E402

from recsched_operator.tuner import KnobConfig  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def rows(extra_ms: Any) -> list[dict[str, float]]:
    return [
        {"items": items, "lone_forward_ms": 0.05 * items, "lone_ms": 0.05 * items + extra_ms(items)}
        for items in (4, 16, 64, 256, 1024)
    ]


def test_the_fit_recovers_a_per_query_and_a_per_item_latency() -> None:
    per_query_ms, per_item_ms = item_overhead(rows(lambda items: 1.5 + 0.01 * items))
    assert per_query_ms == pytest.approx(1.5)
    assert per_item_ms == pytest.approx(0.01)


def test_a_negative_intercept_is_refitted_through_zero() -> None:
    per_query_ms, per_item_ms = item_overhead(rows(lambda items: -2.0 + 0.01 * items))
    assert per_query_ms == 0.0
    assert 0.0 < per_item_ms < 0.01


def test_no_latency_comes_out_negative() -> None:
    per_query_ms, per_item_ms = item_overhead(rows(lambda items: -0.5 - 0.01 * items))
    assert (per_query_ms, per_item_ms) == (0.0, 0.0)


def test_the_simulator_gets_the_fit_or_the_previous_constant() -> None:
    calibration = {
        "workers": 3,
        "rows": rows(lambda items: 1.0 + 0.02 * items),
        "mix_overhead_ms": 7.0,
    }
    cluster = cluster_of(calibration)
    assert cluster.cpu_workers_per_pod == 3
    assert cluster.query_overhead_s == pytest.approx(1e-3)
    assert cluster.query_overhead_per_item_s == pytest.approx(2e-5)
    previous = overheads(calibration | {"method": "mix_mean"})
    assert previous == {"query_ms": 7.0, "item_ms": 0.0}


def test_columns_of_one_config_share_one_search() -> None:
    tuned = KnobConfig(256, 1025)
    same = searched_configs([("whole_query", WHOLE_QUERIES), ("tuned_cpu", WHOLE_QUERIES)])
    assert same == [(("whole_query", "tuned_cpu"), WHOLE_QUERIES)]
    different = searched_configs([("tuned_cpu", tuned), ("whole_query", WHOLE_QUERIES)])
    assert different == [(("tuned_cpu",), tuned), (("whole_query",), WHOLE_QUERIES)]
