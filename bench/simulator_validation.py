"""Validate the queueing simulator against a real pod under real load (issue 5).

For RMC1 and WnD this starts one inference pod (`python -m recsched_pod`, scale 0.01, W workers,
batch B, the paper's lognormal(5.1, 0.2) sizes so queries split into about 3 requests) and drives
it with the load generator (`python -m recsched_loadtest run`, Poisson arrivals), then simulates
the same pod, sizes and rate and compares end-to-end p95.

The simulator's inputs come from the shipped profile plus one calibration run at light load,
never from the runs being predicted: one factor on the profile's times makes the simulated mean
in-pod query duration match the pod's (the machine is shared, so contention slows compute, and a
worker does per-request work outside the timed forward pass), and client latency minus the pod's
query duration gives the fixed per-query cost of HTTP and decoding. The three validation loads
are then predicted blind. Beside it: a calibration from the pod's measured capacity, one
corrected with each predicted run's own compute speed (not blind), and one with the compute speed
of one more run at an operating load that is not predicted (60%; blind): a worker that idles
between requests computes slower than a busy one (docs/benchmarks/tuner.md). `--reanalyse`
predicts recorded runs again with the occupancy and drift-corrected calibrations.

    .venv/bin/python bench/simulator_validation.py [--workers 1] [--batch 64] [--duration-s 40]

Writes docs/benchmarks/simulator_validation.json and its tables to simulator_validation.md
(the reading is in docs/benchmarks/tuner.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from harness import (
    load_average,
    loadtest_json,
    metric_deltas,
    metric_totals,
    run_header,
    running_pod,
    write_results,
)
from simulator_validation_report import render

from recsched_operator.tuner.simulation.engine import ClusterShape, simulate_window
from recsched_operator.tuner.simulation.profiles import ServiceProfile, load_profile
from recsched_operator.tuner.simulation.workload import PAPER_LOGNORMAL

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs/benchmarks/simulator_validation.json"
OPERATING_LOAD = 0.6  # the operating-load calibration run's share of the work bound
POD_METRICS = ("recsched_request_compute_seconds", "recsched_query_duration_seconds")


def load(
    url: str,
    model: str,
    rate: float,
    duration_s: float,
    seed: int,
    max_in_flight: int | None = None,
) -> dict[str, Any]:
    """One `recsched-loadtest run` (paper sizes, 5 s warm-up); its JSON summary plus the pod's
    mean compute per request and mean query duration over it."""
    before = metric_totals(url, POD_METRICS)
    cap = [] if max_in_flight is None else ["--max-in-flight", str(max_in_flight)]
    result = loadtest_json(
        [
            *("run", *cap, "--url", url, "--model", model, "--sizes", "paper"),
            *("--rate", f"{rate:.3f}", "--duration-s", str(duration_s), "--warmup-s", "5"),
            *("--seed", str(seed)),
        ]
    )
    delta = metric_deltas(before, metric_totals(url, POD_METRICS))
    result["pod_mean_compute_s"] = delta["recsched_request_compute_seconds_sum"] / max(
        delta["recsched_request_compute_seconds_count"], 1
    )
    result["pod_mean_query_s"] = delta["recsched_query_duration_seconds_sum"] / max(
        delta["recsched_query_duration_seconds_count"], 1
    )
    return result


def profile_mean_request_s(profile: ServiceProfile, batch: int, items: np.ndarray) -> float:
    requests = np.ceil(items / batch)
    return float(profile.cpu_query_work_s(items, batch).sum() / requests.sum())


def scaled(profile: ServiceProfile, factor: float) -> ServiceProfile:
    return ServiceProfile(
        profile.model,
        profile.batch_items,
        tuple(s * factor for s in profile.cpu_seconds),
        tuple(s * factor for s in profile.gpu_seconds),
        profile.source,
    )


def simulated_mean_query_s(profile: ServiceProfile, workers: int, batch: int, rate: float) -> float:
    """Mean in-pod query duration the simulator predicts (no per-query overhead), seeded."""
    result = simulate_window(
        profile,
        batch,
        1025,
        ClusterShape(1, workers, 0),
        PAPER_LOGNORMAL,
        rate,
        20000,
        np.random.default_rng(11),
    )
    return float(result.latency_s.mean())


def fit_worker_factor(
    profile: ServiceProfile, workers: int, batch: int, rate: float, pod_mean_query_s: float
) -> float:
    """The factor on the profile's times that makes the simulated mean in-pod query duration at
    the calibration load equal the pod's: it folds the worker's per-request work outside the
    timed forward pass (slicing inputs, handing results back) into the service time."""
    low, high = 0.2, 8.0
    for _ in range(20):
        middle = (low * high) ** 0.5
        if simulated_mean_query_s(scaled(profile, middle), workers, batch, rate) < pod_mean_query_s:
            low = middle
        else:
            high = middle
    return float((low * high) ** 0.5)


def fixed_latency_s(
    profile: ServiceProfile,
    workers: int,
    batch: int,
    rate: float,
    http_s: float,
    pod_mean_query_s: float,
) -> float:
    """Per-query latency that occupies no worker: the HTTP cost (client latency minus the pod's
    query duration) plus whatever the pod's mean query time at the calibration load exceeds
    the simulated one (never below the HTTP cost alone)."""
    in_pod_s = pod_mean_query_s - simulated_mean_query_s(profile, workers, batch, rate)
    return http_s + max(0.0, in_pod_s)


def simulated_p95_ms(
    profile: ServiceProfile, workers: int, batch: int, rate: float, overhead_s: float
) -> float:
    cluster = ClusterShape(1, workers, 0, query_overhead_s=overhead_s)
    values = [
        simulate_window(
            profile, batch, 1025, cluster, PAPER_LOGNORMAL, rate, 20000, np.random.default_rng(seed)
        ).percentile_ms(95)
        or float("nan")
        for seed in range(3)
    ]
    return float(np.mean(values))


def drift_corrected_p95_ms(
    profile: ServiceProfile,
    factor: float,
    workers: int,
    batch: int,
    rate: float,
    overhead_s: float,
) -> float:
    """The calibrated simulation with the machine's speed during the predicted run: `factor` is
    the calibration's factor times the pod's mean compute per request in that run over its mean
    at calibration (its own histogram, which the operator also reads from Prometheus). On shared
    cores the speed moved -28%..+15% between calibration and a run minutes later, which a p95 at
    70% load amplifies several-fold; this takes the drift out. It also takes in any slowdown the
    load itself causes, so it checks the queueing model given the service times the pod had, not
    a blind prediction (the fitted column is that)."""
    return simulated_p95_ms(scaled(profile, factor), workers, batch, rate, overhead_s)


def validate(
    model: str, workers: int, batch: int, duration_s: float, workdir: Path
) -> dict[str, Any]:
    profile = load_profile(model)
    items = PAPER_LOGNORMAL.draw(np.random.default_rng(0), 50000)
    work_per_query_s = float(profile.cpu_query_work_s(items, batch).mean())
    with running_pod(model, workers=workers, batch=batch, workdir=workdir) as pod:
        url = pod.url
        load(url, model, 0.1 * workers / work_per_query_s, 8, 99)  # warm-up, discarded
        calibration_rate = 0.15 * workers / work_per_query_s
        calibration = load(url, model, calibration_rate, duration_s, 1)
        compute_factor = calibration["pod_mean_compute_s"] / profile_mean_request_s(
            profile, batch, items
        )
        factor = fit_worker_factor(
            profile, workers, batch, calibration_rate, calibration["pod_mean_query_s"]
        )
        overhead_s = calibration["latency"]["mean_ms"] / 1000 - calibration["pod_mean_query_s"]
        calibrated = scaled(profile, factor)
        # Third calibration: worker occupancy from the pod's measured capacity (a closed loop
        # that keeps every worker busy), the rest of the light-load latency as fixed latency.
        saturation = load(
            url, model, 20 * workers / work_per_query_s, min(20.0, duration_s), 3, 2 * workers + 2
        )
        capacity_factor = workers / (saturation["achieved_qps"] * work_per_query_s)
        by_capacity = scaled(profile, capacity_factor)
        capacity_fixed_s = fixed_latency_s(
            by_capacity,
            workers,
            batch,
            calibration_rate,
            overhead_s,
            calibration["pod_mean_query_s"],
        )
        capacity_bound = workers / (work_per_query_s * factor)
        # Fourth: the fitted calibration with the compute speed of a run at an operating load
        # that is not predicted (60%): a worker that idles between requests computes slower
        # than a busy one, which the light-load calibration alone carries into every prediction.
        operating = load(url, model, OPERATING_LOAD * capacity_bound, duration_s, 4)
        operating_speed = operating["pod_mean_compute_s"] / calibration["pod_mean_compute_s"]
        rows = []
        for fraction in (0.3, 0.5, 0.7):
            rate = fraction * capacity_bound
            measured = load(url, model, rate, duration_s, 2)
            predicted = simulated_p95_ms(calibrated, workers, batch, rate, overhead_s)
            drift = measured["pod_mean_compute_s"] / calibration["pod_mean_compute_s"]
            rows.append(
                {
                    "load_fraction": fraction,
                    "rate_qps": round(rate, 2),
                    "achieved_qps": measured["achieved_qps"],
                    "measured_p95_ms": round(measured["p95_ms"], 2),
                    "simulated_p95_ms": round(predicted, 2),
                    "error": round(predicted / measured["p95_ms"] - 1, 4),
                    "pod_compute_vs_calibration": round(drift, 3),
                    "drift_corrected_p95_ms": round(
                        drift_corrected_p95_ms(
                            profile, factor * drift, workers, batch, rate, overhead_s
                        ),
                        2,
                    ),
                    "operating_calibrated_p95_ms": round(
                        drift_corrected_p95_ms(
                            profile, factor * operating_speed, workers, batch, rate, overhead_s
                        ),
                        2,
                    ),
                    "capacity_calibrated_p95_ms": round(
                        simulated_p95_ms(by_capacity, workers, batch, rate, capacity_fixed_s), 2
                    ),
                    "uncalibrated_simulated_p95_ms": round(
                        simulated_p95_ms(profile, workers, batch, rate, 0.0), 2
                    ),
                }
            )
            print(model, rows[-1], file=sys.stderr)
    return {
        "model": model,
        "workers": workers,
        "batch": batch,
        "compute_factor": round(compute_factor, 3),
        "worker_factor": round(factor, 3),
        "calibration_pod_mean_query_ms": round(calibration["pod_mean_query_s"] * 1000, 3),
        "calibration_pod_mean_compute_ms": round(calibration["pod_mean_compute_s"] * 1000, 3),
        "query_overhead_ms": round(overhead_s * 1000, 2),
        "measured_capacity_qps": round(saturation["achieved_qps"], 2),
        "capacity_factor": round(capacity_factor, 3),
        "capacity_fixed_latency_ms": round(capacity_fixed_s * 1000, 2),
        "calibration_qps": round(calibration_rate, 2),
        "operating_load_fraction": OPERATING_LOAD,
        "operating_qps": round(operating["achieved_qps"], 2),
        "operating_measured_p95_ms": round(operating["p95_ms"], 2),
        "operating_speed_vs_calibration": round(operating_speed, 3),
        "rows": rows,
    }


def reanalyse(document: dict[str, Any]) -> str:
    """The recorded runs predicted again with two other calibrations: the profile scaled by the
    pod's own compute histogram at calibration (worker occupancy measured directly, everything
    else the pod adds at the light load taken as fixed latency that occupies no worker), and the
    fitted calibration corrected for the machine's speed during each run (`drift_corrected`),
    and the same correction with the speed of the model's other runs (the mean of their compute
    per request over calibration's): blind to the run predicted, it tells a speed that depends on
    the load (the worker's caches stay warm when it rarely idles) from drift within one run."""
    lines = [
        "| model | load | measured p95 (ms) | occupancy-calibrated p95 (ms) | error "
        "| speed vs calibration | drift-corrected p95 (ms) | error "
        "| speed of the other runs | p95 from it (ms) | error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in document["results"]:
        profile = load_profile(result["model"])
        calibrated = scaled(profile, result["compute_factor"])
        fixed_s = fixed_latency_s(
            calibrated,
            result["workers"],
            result["batch"],
            result["calibration_qps"],
            result["query_overhead_ms"] / 1000,
            result["calibration_pod_mean_query_ms"] / 1000,
        )
        speeds = [row["pod_compute_vs_calibration"] for row in result["rows"]]
        for index, row in enumerate(result["rows"]):
            measured = row["measured_p95_ms"]
            others = float(np.mean(speeds[:index] + speeds[index + 1 :]))
            from_others = drift_corrected_p95_ms(
                profile,
                result["worker_factor"] * others,
                result["workers"],
                result["batch"],
                row["rate_qps"],
                result["query_overhead_ms"] / 1000,
            )
            predicted = simulated_p95_ms(
                calibrated, result["workers"], result["batch"], row["rate_qps"], fixed_s
            )
            drift = row["pod_compute_vs_calibration"]
            corrected = drift_corrected_p95_ms(
                profile,
                result["worker_factor"] * drift,
                result["workers"],
                result["batch"],
                row["rate_qps"],
                result["query_overhead_ms"] / 1000,
            )
            lines.append(
                f"| {result['model']} | {row['load_fraction']:.0%} | {measured:.1f} | "
                f"{predicted:.1f} | {predicted / measured - 1:+.1%} | {drift:.2f} | "
                f"{corrected:.1f} | {corrected / measured - 1:+.1%} | {others:.2f} | "
                f"{from_others:.1f} | {from_others / measured - 1:+.1%} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reanalyse",
        type=Path,
        nargs="?",
        const=OUT,
        metavar="JSON",
        help="predict recorded runs (this JSON, by default the latest) with the occupancy and "
        "drift-corrected calibrations; print only",
    )
    parser.add_argument("--models", nargs="+", default=["rmc1", "wnd"])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--duration-s", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.reanalyse:
        print(reanalyse(json.loads(args.reanalyse.read_text())))
        return 0
    header = run_header()
    with tempfile.TemporaryDirectory(prefix="recsched-validation-") as tmp:
        results = [
            validate(model, args.workers, args.batch, args.duration_s, Path(tmp))
            for model in args.models
        ]
    document = {**header, "load_average_after": load_average(), "results": results}
    write_results(args.out, document, render(document))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
