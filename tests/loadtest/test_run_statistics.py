"""Run summaries: percentiles, warm-up discard, achieved vs offered, error buckets (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from recsched_loadtest.stats import NOT_SENT, OK, RunRecords, summarize_run


def _records(count: int, gap_s: float, latency_s: float, warmup_s: float) -> RunRecords:
    scheduled = np.arange(count) * gap_s
    records = RunRecords(
        scheduled_s=scheduled,
        sizes_items=np.full(count, 10, dtype=np.int64),
        offered_qps=1 / gap_s,
        duration_s=count * gap_s,
        warmup_s=warmup_s,
    )
    records.sent_s[:] = scheduled + 0.0005
    records.done_s[:] = scheduled + latency_s
    records.kinds = [OK] * count
    return records


def test_percentiles_are_over_successful_queries_after_warm_up() -> None:
    records = _records(1000, 0.01, 0.002, warmup_s=1.0)
    records.done_s[100:] = records.scheduled_s[100:] + np.linspace(0.001, 0.9, 900)
    summary = summarize_run(records)
    latency = summary.latency
    assert latency is not None and latency.count == 900
    expected = np.percentile(np.linspace(1.0, 900.0, 900), [50, 90, 95, 99, 99.9])
    got = [latency.p50_ms, latency.p90_ms, latency.p95_ms, latency.p99_ms, latency.p999_ms]
    assert got == pytest.approx(expected.tolist())
    assert summary.send_lag_p99_ms == pytest.approx(0.5)


def test_achieved_rate_counts_completions_inside_the_window() -> None:
    summary = summarize_run(_records(1000, 0.01, 0.002, warmup_s=2.0))
    assert summary.offered_qps == pytest.approx(100)
    assert summary.scheduled_qps == pytest.approx(100)
    assert summary.achieved_qps == pytest.approx(100, rel=0.01)
    slow = _records(1000, 0.01, 0.002, warmup_s=2.0)
    slow.done_s[:] = 0.5 + np.arange(1000) * 0.02  # the server completes only 50 per second
    assert summarize_run(slow).achieved_qps == pytest.approx(50, rel=0.02)


def test_every_query_lands_in_exactly_one_bucket_and_warm_up_errors_are_kept_apart() -> None:
    records = _records(100, 0.01, 0.002, warmup_s=0.2)
    for index, kind in [
        (3, "timeout"),
        (30, "http_503"),
        (31, "http_503"),
        (50, "connection"),
        (60, "client_saturated"),
        (70, "deadline"),
        (80, "bad_response"),
    ]:
        records.kinds[index] = kind
    summary = summarize_run(records)
    assert summary.queries == 80
    assert summary.errors == {
        "bad_response": 1,
        "client_saturated": 1,
        "connection": 1,
        "deadline": 1,
        "http_503": 2,
    }
    assert summary.warmup_errors == {"timeout": 1}
    assert summary.ok + sum(summary.errors.values()) == summary.queries
    assert summary.error_ratio == pytest.approx(6 / 80)
    assert not summary.meets_slo(target_ms=100.0)


def test_a_stopped_run_ends_its_window_at_the_stop() -> None:
    records = _records(100, 0.01, 0.002, warmup_s=0.0)
    records.stopped_at_s = 0.5
    records.kinds[50:] = [NOT_SENT] * 50
    summary = summarize_run(records)
    assert summary.queries == 50 and summary.window_s == pytest.approx(0.5)
    assert summary.stopped_early and summary.errors == {}


def test_slo_needs_p95_under_target_and_errors_under_the_bound() -> None:
    summary = summarize_run(_records(1000, 0.01, 0.020, warmup_s=0.0))
    assert summary.meets_slo(target_ms=20.5)
    assert not summary.meets_slo(target_ms=19.5)
    nothing = _records(10, 0.01, 0.02, 0.0)
    nothing.kinds = ["connection"] * 10
    assert summarize_run(nothing).latency is None
    assert not summarize_run(nothing).meets_slo(target_ms=1e9)
