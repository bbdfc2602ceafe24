"""`bench/headline.py` on one model with a tiny budget: the table's shape and the orderings that
must hold whatever the policy does (the grid optimum bounds every column, each baseline is the
config it claims, the CPU-only tuner never offloads), so a change to the harness or the simulator
that breaks them fails here rather than in a 15-minute `make reproduce`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import headline  # noqa: E402
from headline_report import write_report  # noqa: E402

pytestmark = pytest.mark.timeout(180)

TOLERANCE = 0.02
"""Bisection steps and the optimum's pruning (p95 is only nearly monotone in QPS) leave capacities
within about 1% of each other's order; 2% still fails on any real inversion."""
OFF = 1025
COLUMNS = ("static_baseline", "whole_query", "tuned_cpu", "tuned_gpu", "optimum")


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    budget = headline.Budget(queries=1000, seeds=(1,), intervals=10)
    return [headline.headline_row("ncf", slo, "2x8+gpu", budget) for slo in ("tight", "loose")]


def test_each_row_holds_every_column_with_the_config_behind_it(
    rows: list[dict[str, Any]],
) -> None:
    assert [r["target"] for r in rows] == ["tight", "loose"]
    assert rows[0]["targetMs"] < rows[1]["targetMs"]
    for row in rows:
        assert row["model"] == "ncf" and row["cluster"] == "2x8+gpu"
        for column in COLUMNS:
            assert row[f"{column}_qps"] >= 0
            assert set(row[f"{column}_config"]) == {"batchSize", "offloadThreshold"}


def test_baselines_are_the_configs_they_claim_and_never_offload(
    rows: list[dict[str, Any]],
) -> None:
    for row in rows:
        assert row["static_baseline_config"]["batchSize"] in headline.STATIC_BATCHES
        assert row["static_baseline_qps"] == max(row["static_batch_qps"].values())
        assert row["whole_query_config"] == {"batchSize": 1024, "offloadThreshold": OFF}
        for column in ("static_baseline", "tuned_cpu", "cpu_optimum"):
            assert row[f"{column}_config"]["offloadThreshold"] == OFF


def test_grid_optimum_bounds_every_column_within_bisection_tolerance(
    rows: list[dict[str, Any]],
) -> None:
    for row in rows:
        ceiling = row["optimum_qps"] * (1 + TOLERANCE)
        for column in (*COLUMNS, "cpu_optimum"):
            assert row[f"{column}_qps"] <= ceiling, (row["target"], column)
        cpu_ceiling = row["cpu_optimum_qps"] * (1 + TOLERANCE)
        for column in ("static_baseline", "whole_query", "tuned_cpu"):
            assert row[f"{column}_qps"] <= cpu_ceiling, (row["target"], column)
        assert row["floor_met"] == (row["tuned_gpu_min_qps"] >= 0.95 * row["optimum_qps"])


def test_report_writes_a_json_list_of_rows_with_ratios_and_provenance(
    rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "headline.md"
    write_report(out, rows, (1,), 1.0, "bench/headline.py --models ncf")
    written = json.loads(out.with_suffix(".json").read_text())
    assert [r["target"] for r in written] == ["tight", "loose"]
    for row in written:
        expected = row["tuned_cpu_qps"] / row["static_baseline_qps"]
        assert row["ratios"]["c/a"] == pytest.approx(expected, rel=1e-3)
        assert row["run"]["seeds"] == [1]
        assert "bench/headline.py" in row["run"]["command"]
    text = out.read_text()
    assert "| ncf | tight" in text and "| ncf | loose" in text
    assert "## Where the ~2x appears" in text


def test_summary_block_in_benchmarks_md_is_replaced_and_the_rest_kept(
    rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    from headline_report import SUMMARY_BEGIN, SUMMARY_END

    summary = tmp_path / "benchmarks.md"
    summary.write_text(f"# Benchmarks\n\nabove\n{SUMMARY_BEGIN}\nold table\n{SUMMARY_END}\nbelow\n")
    write_report(tmp_path / "headline.md", rows, (1,), 1.0, "bench/headline.py", summary)
    text = summary.read_text()
    assert "old table" not in text
    assert text.startswith("# Benchmarks\n\nabove\n") and text.endswith(f"{SUMMARY_END}\nbelow\n")
    assert "| ncf | tight" in text
