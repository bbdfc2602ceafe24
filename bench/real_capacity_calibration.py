"""Calibration of a real pod for `real_capacity.py` (issue 13, section 2): its service times and
the latency a query spends outside any worker, measured with `recsched-loadtest run`, and the
simulator's cluster built from them. Why this method and what it misses: `real_capacity.py`.

A calibration document holds the pod's worker count (`workers`), one row per size in
CALIBRATION_ITEMS (saturated service time, the pod's forward time, the lone latency) and the
light-load check of the latency model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from harness import Running, loadtest_json, metric_deltas, metric_totals, push_config

from recsched_operator.tuner.simulation.engine import ClusterShape, simulate_queries
from recsched_operator.tuner.simulation.profiles import ServiceProfile, load_profile
from recsched_operator.tuner.simulation.workload import HEAVY_TAILED

CALIBRATION_ITEMS = (4, 16, 64, 256, 1024)
SATURATION_S = 4.0  # measured, after 1 s of warm-up
LONE_S, LONE_UTILIZATION, LONE_MIN_QPS, LONE_MAX_QPS = 4.0, 0.2, 4.0, 50.0
POD_METRICS = ("recsched_request_compute_seconds", "recsched_query_duration_seconds")


def run_load(pod: Running, model: str, args: list[str]) -> dict[str, Any]:
    """One `recsched-loadtest run`, with the pod's compute and query-duration means over it."""
    before = metric_totals(pod.url, POD_METRICS)
    summary = loadtest_json(["run", "--url", pod.url, "--model", model, *args])
    delta = metric_deltas(before, metric_totals(pod.url, POD_METRICS))
    for name, key in zip(POD_METRICS, ("pod_forward_s", "pod_query_s"), strict=True):
        summary[key] = delta[f"{name}_sum"] / max(delta[f"{name}_count"], 1)
    return summary


def saturate(
    pod: Running, model: str, items: int, guess_s: float, seed: int, workers: int
) -> dict[str, Any]:
    """A worker's service time at `items` items: W / the QPS the saturated pod completes."""
    rate = min(3 * workers / guess_s, 600.0)
    summary = run_load(
        pod,
        model,
        [
            *("--sizes", f"fixed:{items}", "--rate", f"{rate:.1f}", "--seed", str(seed)),
            *("--duration-s", f"{SATURATION_S + 1}", "--warmup-s", "1"),
            *("--max-in-flight", str(2 * workers + 2)),
        ],
    )
    qps = max(summary["achieved_qps"], 1 / SATURATION_S)  # not one completion: under 1 per window
    return {
        "items": items,
        "saturated_qps": round(qps, 2),
        "service_ms": round(1e3 * workers / qps, 3),
        "pod_forward_ms": round(1e3 * summary["pod_forward_s"], 3),
    }


def lone_latency(
    pod: Running, model: str, items: int, service_s: float, seed: int, workers: int
) -> dict[str, float]:
    """`items`-item queries at light load (the pod's workers busy LONE_UTILIZATION of the time):
    the client's median latency and the pod's mean forward time, in ms. Their difference is
    what a query waits for beyond its worker's compute when nothing else is queued: the body's
    transfer, decoding and encoding on the pod's event loop and in the client."""
    rate = min(max(LONE_UTILIZATION * workers / service_s, LONE_MIN_QPS), LONE_MAX_QPS)
    summary = run_load(
        pod,
        model,
        [
            *("--sizes", f"fixed:{items}", "--rate", f"{rate:.1f}", "--seed", str(seed)),
            *("--duration-s", f"{LONE_S + 1}", "--warmup-s", "1"),
        ],
    )
    return {
        "lone_ms": round(float(summary["latency"]["p50_ms"]), 3),
        "lone_forward_ms": round(1e3 * summary["pod_forward_s"], 3),
    }


def item_overhead(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """(ms per query, ms per item) of latency that occupies no worker, fitted (least squares)
    on each size's lone latency minus its lone forward time. Neither below 0 (the simulator
    takes no negative latency; a negative intercept is refitted through 0)."""
    items = np.array([row["items"] for row in rows], dtype=float)
    extra = np.array([row["lone_ms"] - row["lone_forward_ms"] for row in rows])
    per_item, per_query = np.polyfit(items, extra, 1)
    if per_query < 0:
        per_query, per_item = 0.0, float(items @ extra / (items @ items))
    return max(float(per_query), 0.0), max(float(per_item), 0.0)


def pod_profile(model: str, rows: list[dict[str, Any]]) -> ServiceProfile:
    items = tuple(row["items"] for row in rows)
    seconds = tuple(row["service_ms"] / 1e3 for row in rows)
    return ServiceProfile(model, items, seconds, seconds, {"method": "saturated pod"})


def simulated_light(
    profile: ServiceProfile, cluster: ClusterShape, rate: float, items: np.ndarray
) -> tuple[float, float]:
    """Mean and p95 simulated latency (ms) of `items` at `rate` on `cluster`, whole queries."""
    arrivals = np.cumsum(np.random.default_rng(7).exponential(1 / rate, size=items.size))
    window = simulate_queries(profile, 1024, 1025, cluster, arrivals, items, rate)
    return 1e3 * float(window.latency_s.mean()), float(window.percentile_ms(95) or 0.0)


def overheads(calibration: dict[str, Any]) -> dict[str, float]:
    """The latency a query adds beyond its workers' time, in the calibration's method: the
    size-dependent fit (`item_overhead`), or `mix_mean` (the previous method: one constant, the
    light mix's mean latency over the simulated mean, not below 0)."""
    if calibration.get("method", "per_item") == "mix_mean":
        return {"query_ms": calibration["mix_overhead_ms"], "item_ms": 0.0}
    query_ms, item_ms = item_overhead(calibration["rows"])
    return {"query_ms": query_ms, "item_ms": item_ms}


def overhead_fields(calibration: dict[str, Any]) -> dict[str, float]:
    """`overheads` as a calibration document records them (rounded, in ms)."""
    extra = overheads(calibration)
    return {
        "query_overhead_ms": round(extra["query_ms"], 3),
        "item_overhead_ms": round(extra["item_ms"], 5),
    }


def cluster_of(calibration: dict[str, Any]) -> ClusterShape:
    extra = overheads(calibration)
    return ClusterShape(
        1,
        calibration.get("workers", 2),  # documents before the key: 2 workers
        0,
        query_overhead_s=extra["query_ms"] / 1e3,
        query_overhead_per_item_s=extra["item_ms"] / 1e3,
    )


def calibrate(pod: Running, model: str, sizes: Path, seed: int, workers: int) -> dict[str, Any]:
    push_config(pod.url, {"batchSize": 1024, "offloadThreshold": 1025, "workers": workers})
    shipped = load_profile(model)
    rows = [
        {
            **saturate(pod, model, items, shipped.cpu_request_s(items), seed, workers),
            "shipped_forward_ms": round(1e3 * shipped.cpu_request_s(items), 3),
        }
        for items in CALIBRATION_ITEMS
    ]
    for row in rows:
        row |= lone_latency(pod, model, row["items"], row["service_ms"] / 1e3, seed, workers)
    profile = pod_profile(model, rows)
    items = HEAVY_TAILED.draw(np.random.default_rng(seed), 4000)
    light_qps = 0.2 * workers / float(profile.cpu_query_work_s(items, 1024).mean())
    light = run_load(
        pod,
        model,
        [
            *("--sizes", f"file:{sizes}", "--rate", f"{light_qps:.2f}", "--seed", str(seed)),
            *("--duration-s", "6", "--warmup-s", "1"),
        ],
    )
    bare_mean_ms, _ = simulated_light(profile, ClusterShape(1, workers, 0), light_qps, items)
    calibration: dict[str, Any] = {
        "workers": workers,
        "rows": rows,
        "light_qps": round(light_qps, 2),
        "light_mean_ms": round(light["latency"]["mean_ms"], 2),
        "light_p95_ms": round(light["latency"]["p95_ms"], 2),
        # The previous method's constant: what the client waits beyond a worker's time on
        # average over the mix, not below 0 (kept to compare the two methods on the same runs).
        "mix_overhead_ms": round(max(0.0, light["latency"]["mean_ms"] - bare_mean_ms), 2),
    }
    mean_ms, p95_ms = simulated_light(profile, cluster_of(calibration), light_qps, items)
    calibration |= {
        **overhead_fields(calibration),
        # A check of the latency model at light load (the fit used fixed sizes, not the mix).
        "light_simulated_mean_ms": round(mean_ms, 2),
        "light_simulated_p95_ms": round(p95_ms, 2),
    }
    return calibration


def pooled(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The two calibrations that bracket a round's searches, averaged size by size."""
    rows = [
        {key: one[key] if key == "items" else round((one[key] + two[key]) / 2, 3) for key in one}
        for one, two in zip(before["rows"], after["rows"], strict=True)
    ]
    mix_ms = (before["mix_overhead_ms"] + after["mix_overhead_ms"]) / 2
    calibration = {
        "workers": before.get("workers", 2),
        "rows": rows,
        "mix_overhead_ms": round(mix_ms, 2),
    }
    return calibration | overhead_fields(calibration)
