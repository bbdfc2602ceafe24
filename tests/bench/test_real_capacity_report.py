"""bench/real_capacity.py's verdict and tables from recorded rounds: a column passes the 15% floor
only when its median measured/predicted ratio is within 15% of 1, every round's pair is shown,
and the calibration table puts the pod's forward time beside the shipped profile's."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from real_capacity import column_summary  # noqa: E402
from real_capacity_report import render  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def record(round_number: int, predicted: float, measured: float) -> dict[str, Any]:
    rows = [
        {"items": items, "saturated_qps": 10.0, "service_ms": 2.0 * items, "pod_forward_ms": items}
        | {"shipped_forward_ms": 2.0 * items}
        for items in (4, 1024)
    ]
    return {
        "round": round_number,
        "order": ["whole_query", "tuned_cpu"],
        "calibration": {"rows": rows, "query_overhead_ms": 3.0},
        "predicted": {key: {"qps": predicted} for key in ("whole_query", "tuned_cpu")},
        "measured_qps": {"whole_query": measured, "tuned_cpu": measured * 1.25},
        "measured_over_predicted": {
            "whole_query": measured / predicted,
            "tuned_cpu": measured * 1.25 / predicted,
        },
    }


def test_the_floor_reads_the_median_ratio_and_counts_rounds_within_it() -> None:
    records = [record(1, 100.0, 80.0), record(2, 100.0, 95.0), record(3, 100.0, 130.0)]
    whole = column_summary(records, "whole_query")
    assert whole["ratio"]["median"] == pytest.approx(0.95)
    assert whole["rounds_within_tolerance"] == 1  # 0.80 and 1.30 are out, 0.95 is in
    assert whole["within_tolerance"] is True
    assert whole["measured_qps"]["spread_pct"] == pytest.approx(52.6, abs=0.1)
    low = column_summary([record(1, 100.0, 80.0), record(2, 100.0, 84.0)], "whole_query")
    assert low["within_tolerance"] is False


def test_report_shows_every_round_and_the_profile_beside_the_pod() -> None:
    records = [record(1, 100.0, 70.0), record(2, 100.0, 80.0)]
    document = {
        "machine": {"node": "vm", "cpus": 2, "cpu_model": "AMD EPYC"},
        "load_average_before": [1.0, 1.0, 1.0],
        "load_average_after": [2.0, 2.0, 2.0],
        "date": "2026-12-03 16:00 UTC",
        "command": "python bench/real_capacity.py",
        "commit": "abc1234",
        "minutes": 12.5,
        "workers": 2,
        "sizes": "heavy",
        "target_multiple": 1.0,
        "tolerance": 0.15,
        "results": [
            {
                "model": "wnd",
                "target_ms": 70.0,
                "tuned_cpu_config": {"batchSize": 512, "offloadThreshold": 1025},
                "rounds": records,
                "columns": {
                    key: column_summary(records, key) for key in ("whole_query", "tuned_cpu")
                },
            }
        ],
    }
    report = render(document)
    assert "| wnd | 1 | b, c | 100.0 | 70.0 | 0.70 | 100.0 | 87.5 | 0.88 |" in report
    assert "| wnd | 2 | b, c | 100.0 | 80.0 | 0.80 |" in report
    assert "| wnd | 1024 | 2048.00 | 1024.00 | 0.50 |" in report
    assert "**no**" in report and "**yes**" in report  # (b) 0.75 is out, (c) 0.94 is in


def test_models_measured_in_separate_holds_each_get_their_own_line() -> None:
    records = [record(1, 100.0, 90.0)]
    columns = {key: column_summary(records, key) for key in ("whole_query", "tuned_cpu")}
    results = [
        {
            "model": model,
            "target_ms": 70.0,
            "tuned_cpu_config": {"batchSize": 1024, "offloadThreshold": 1025},
            "rounds": records,
            "columns": columns,
            "run": {
                "command": f"python bench/real_capacity.py --models {model}",
                "commit": "abc1234",
                "date": f"2026-12-03 {hour}:00 UTC",
                "load_average_before": [1.0, 1.0, 1.0],
                "load_average_after": [2.0, 2.0, 2.0],
                "minutes": 15.0,
            },
        }
        for model, hour in (("rmc1", 18), ("wnd", 19))
    ]
    document = {
        "machine": {"node": "vm", "cpus": 2, "cpu_model": "AMD EPYC"},
        "load_average_before": [1.0, 1.0, 1.0],
        "date": "2026-12-03 18:00 UTC",
        "command": "python bench/real_capacity.py --models rmc1",
        "commit": "abc1234",
        "workers": 2,
        "sizes": "heavy",
        "target_multiple": 1.5,
        "tolerance": 0.15,
        "trial": {"trial_s": 6.0, "warmup_s": 1.5, "min_trials": 2, "max_trials": 3},
        "results": results,
    }
    report = render(document)
    assert "30.0 min in 2 holds of the bench lock" in report
    assert "* wnd: 2026-12-03 19:00 UTC, load average 1.0 before, 2.0 after, 15.0 min" in report
    assert "at least 2 trials per rate" in report
