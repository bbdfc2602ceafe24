"""Where the simulator's capacity prediction for a real pod goes wrong (issue 13, section 2).

`real_capacity.py` compares one number per column (the searched capacity) with its prediction.
This probe looks inside one prediction: on one pod calibrated as `real_capacity.py` does, it
offers whole queries of the heavy size mix at fixed fractions of the predicted capacity and
records, per rate, beside the simulator's answer for the same rate and the same window length:

* the client's latency percentiles (p50, p90, p95, p99) and the simulated ones (median and range
  over seeds of trial-length windows);
* the pod's mean forward time per request (its compute histogram), against the calibration's
  saturated time: how much a request slows down as the cores fill up;
* the CPU the load generator used (its process's rusage) and the pod used (/proc/PID/stat),
  in cores: the load generator shares the two cores with the pod's workers.

    flock /tmp/recsched-bench.lock .venv/bin/python bench/real_capacity_probe.py \
        [--model rmc1] [--workers 2] [--fractions 0.5,0.75,1.0]

Prints one JSON document (and writes it with --out). A diagnostic: nothing is recorded in
docs/benchmarks/ from it unless the reading quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import real_capacity as rc
from harness import Running, load_average, loadtest_json, metric_deltas, metric_totals, running_pod
from real_capacity_calibration import POD_METRICS, calibrate, cluster_of, pod_profile

from recsched_operator.tuner.simulation.capacity import CapacityModel, Scenario
from recsched_operator.tuner.simulation.workload import HEAVY_TAILED

DURATION_S, WARMUP_S = 10.0, 1.5
PERCENTILES = (50, 90, 95, 99)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured_point(pod: Running, model: str, sizes: Path, rate: float, seed: int) -> dict[str, Any]:
    """One open-loop run at `rate`: client latency, pod forward time, CPU of both sides."""
    pod_cpu, client_cpu = process_cpu_s(pod.process.pid), children_cpu_s()
    before = metric_totals(pod.url, POD_METRICS)
    wall = (DURATION_S + WARMUP_S) * 1.0
    summary = loadtest_json(
        [
            *("run", "--url", pod.url, "--model", model, "--sizes", f"file:{sizes}"),
            *("--rate", f"{rate:.2f}", "--seed", str(seed)),
            *("--duration-s", f"{DURATION_S + WARMUP_S:g}", "--warmup-s", f"{WARMUP_S:g}"),
        ]
    )
    delta = metric_deltas(before, metric_totals(pod.url, POD_METRICS))
    name = POD_METRICS[0]
    latency = summary["latency"]
    return {
        "rate_qps": round(rate, 2),
        "achieved_qps": round(summary["achieved_qps"], 2),
        **{f"p{p}_ms": round(latency[f"p{p}_ms"], 1) for p in PERCENTILES},
        "mean_ms": round(latency["mean_ms"], 1),
        "pod_forward_mean_ms": round(
            1e3 * delta[f"{name}_sum"] / max(delta[f"{name}_count"], 1), 2
        ),
        # Both include the load generator's start-up (interpreter, workload pool): an upper bound.
        "client_cores": round((children_cpu_s() - client_cpu) / wall, 2),
        "pod_cores": round((process_cpu_s(pod.process.pid) - pod_cpu) / wall, 2),
    }


def simulated_point(scenario: Scenario, rate: float) -> dict[str, Any]:
    """The simulator at `rate`, whole queries: windows as long as the run (seeds 0-4) and one
    long window."""
    queries = round(rate * (DURATION_S + WARMUP_S))
    short = []
    for seed in range(rc.SIM_SEEDS):
        window = CapacityModel.build(scenario, queries, seed).window(rc.WHOLE_QUERIES, rate)
        short.append([float(np.percentile(window.latency_s, p)) * 1e3 for p in PERCENTILES])
    long = CapacityModel.build(scenario, 20000, 99).window(rc.WHOLE_QUERIES, rate)
    point: dict[str, Any] = {}
    for index, p in enumerate(PERCENTILES):
        values = [row[index] for row in short]
        point[f"p{p}_ms"] = {
            "median": round(statistics.median(values), 1),
            "min": round(min(values), 1),
            "max": round(max(values), 1),
            "long_window": round(float(np.percentile(long.latency_s, p)) * 1e3, 1),
        }
    point["utilization"] = round(float(long.utilization("cpu") or 0.0), 3)
    return point


def probe(
    model: str, fractions: list[float], target_multiple: float, workdir: Path, workers: int
) -> dict[str, Any]:
    sizes = workdir / "heavy-sizes.txt"
    draws = HEAVY_TAILED.draw(np.random.default_rng(0), 20000)
    sizes.write_text("\n".join(str(size) for size in draws.tolist()) + "\n")
    with running_pod(model, workers=workers, batch=1024, workdir=workdir) as pod:
        warm_up = ["--sizes", f"file:{sizes}", "--rate", "5", "--duration-s", "5"]
        loadtest_json(["run", "--url", pod.url, "--model", model, *warm_up])
        calibration = calibrate(pod, model, sizes, 0, workers)
        profile = pod_profile(model, calibration["rows"])
        target = round(target_multiple * calibration["rows"][-1]["service_ms"], 1)
        scenario = Scenario(profile, cluster_of(calibration), HEAVY_TAILED, 95, target)
        _, predicted = rc.predict(model, calibration, target, rc.WHOLE_QUERIES)
        previous = calibration | {"method": "mix_mean"}
        _, predicted_mix_mean = rc.predict(model, previous, target, rc.WHOLE_QUERIES)
        capacity = predicted["whole_query"]["qps"]
        points = []
        for index, fraction in enumerate(fractions):
            rate = fraction * capacity
            points.append(
                {
                    "fraction": fraction,
                    "measured": measured_point(pod, model, sizes, rate, index + 1),
                    "simulated": simulated_point(scenario, rate),
                }
            )
            rc.log(f"{model} x{fraction}: {points[-1]}")
    return {
        "model": model,
        "workers": workers,
        "target_ms": target,
        "calibration": calibration,
        "predicted_whole_query": predicted["whole_query"],
        "predicted_whole_query_mix_mean": predicted_mix_mean["whole_query"],
        "points": points,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="rmc1")
    parser.add_argument("--workers", type=int, default=rc.WORKERS)
    parser.add_argument("--fractions", default="0.5,0.75,1.0")
    parser.add_argument("--target-multiple", type=float, default=rc.TARGET_MULTIPLE)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rc.stop_on_sigterm()
    before = load_average()
    with tempfile.TemporaryDirectory(prefix="real-capacity-probe-") as scratch:
        fractions = [float(value) for value in args.fractions.split(",")]
        document = probe(args.model, fractions, args.target_multiple, Path(scratch), args.workers)
    document["load_average"] = {"before": before, "after": load_average()}
    text = json.dumps(document, indent=1)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
