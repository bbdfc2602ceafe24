"""What the real-loop tuner can win on this machine: an RMC1 pod's p95 at each batch size.

One pod (scale 0.01, 2 workers, `--pin-workers auto`) under the load generator; for each round
the batch size steps through `--batches`, each held for `--seconds` of load, and the p95 of the
pod's own query-duration histogram (what the tuner reads through Prometheus) is recorded with the
client's. Two workloads by default: the one the real-loop test used first (production sizes,
Poisson 15 QPS) and the one it uses now (large queries, constant 8 QPS); see
tests/operator/test_tuning_real_loop.py.

    .venv/bin/python bench/batch_landscape.py [--rounds 3] [--seconds 12]

Writes docs/benchmarks/batch_landscape.json and its tables to docs/benchmarks/batch_landscape.md
(the reading is in docs/benchmarks.md). `p95_by_batch` is also the HTTP half of
bench/worker_pinning.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from harness import (
    header_line,
    loadtest_json,
    metric_deltas,
    metric_totals,
    push_config,
    run_header,
    running_pod,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]
DURATION = "recsched_query_duration_seconds_bucket"
WORKLOADS = {
    "production sizes, Poisson 15 QPS": ("production", 15.0, "poisson"),
    "large queries (lognormal 6.5, 0.4), constant 8 QPS": ("lognormal:6.5,0.4", 8.0, "constant"),
}


def bucket_quantile_ms(counts: dict[str, float], quantile: float = 0.95) -> float:
    """A quantile of the queries counted in a histogram's bucket deltas (`metric_totals` keys
    `..._bucket{le=X}`), interpolated within the bucket as Prometheus's histogram_quantile does."""
    buckets = sorted((float(key.split("le=")[1].rstrip("}")), n) for key, n in counts.items())
    rank = quantile * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            return 1e3 * (lower + (le - lower) * (rank - below) / max(count - below, 1e-9))
        lower, below = le, count
    return float("nan")


def p95_by_batch(
    sizes: str,
    qps: float,
    seconds: float,
    pin: str,
    batches: list[int],
    seed: int,
    arrivals: str = "poisson",
) -> dict[str, Any]:
    """p95 by batch size of an RMC1 pod with 2 workers (`--pin-workers pin`) under load: the
    pod's query-duration histogram (what the tuner reads) and the client's."""
    result: dict[str, Any] = {}
    with running_pod("rmc1", workers=2, batch=batches[0], extra_args=("--pin-workers", pin)) as pod:
        workload = ["run", "--url", pod.url, "--model", "rmc1", "--sizes", sizes]
        workload += ["--rate", str(qps), "--arrivals", arrivals, "--seed", str(seed)]
        # A first window after start-up runs slower: warm the pod up before measuring.
        loadtest_json([*workload, "--duration-s", "5"])
        for batch in batches:
            push_config(pod.url, {"batchSize": batch, "offloadThreshold": 1025, "workers": 2})
            before = metric_totals(pod.url, [DURATION])
            latency = loadtest_json([*workload, "--duration-s", str(seconds), "--warmup-s", "2"])[
                "latency"
            ]
            counts = metric_deltas(before, metric_totals(pod.url, [DURATION]))
            result[str(batch)] = {
                "pod_p95_ms": bucket_quantile_ms(counts),
                "client_p95_ms": latency["p95_ms"],
                "client_median_ms": latency["p50_ms"],
            }
    return result


def run_line(results: dict[str, Any]) -> str:
    """The run's header sentence; runs recorded before bench/harness.py had their own fields."""
    if "commit" in results:
        return header_line(results)
    machine = results["machine"]
    return (
        f"Machine: {machine['cpus']} CPUs ({machine['processor']}), load average "
        f"{machine['load_average']} at the start, {results['date']}."
    )


def render(results: dict[str, Any]) -> str:
    args = results["args"]
    lines = [
        "# Batch-size landscape of the real-loop workloads",
        "",
        f"Command: `.venv/bin/python bench/batch_landscape.py --rounds {args['rounds']} "
        f"--seconds {args['seconds']} --batches {args['batches']}`. "
        f"{run_line(results)} One RMC1 pod, "
        "scale 0.01, 2 workers pinned (`auto` on 2 CPUs). Pod p95 per round (the tuner's view), "
        "then the median over rounds and its change against B = 1024.",
        "",
    ]
    for name, rounds in results["workloads"].items():
        batches = list(rounds[0])
        lines += [
            f"## {name}",
            "",
            "| B | pod p95 ms per round | median | vs B = 1024 | client p95 median ms |",
            "|---|---|---|---|---|",
        ]
        base = statistics.median(run[batches[0]]["pod_p95_ms"] for run in rounds)
        for batch in batches:
            pod = [run[batch]["pod_p95_ms"] for run in rounds]
            client = statistics.median(run[batch]["client_p95_ms"] for run in rounds)
            median = statistics.median(pod)
            lines.append(
                f"| {batch} | {', '.join(f'{v:.1f}' for v in pod)} | {median:.1f} | "
                f"{median / base - 1:+.0%} | {client:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--batches", default="1024,512,256,128")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks" / "batch_landscape.json"
    )
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    workloads: dict[str, list[dict[str, Any]]] = {name: [] for name in WORKLOADS}
    for round_index in range(args.rounds):
        for name, (sizes, qps, arrivals) in WORKLOADS.items():
            run = p95_by_batch(sizes, qps, args.seconds, "auto", batches, round_index, arrivals)
            workloads[name].append(run)
            print(name, json.dumps(run), flush=True)
    arguments = {key: value for key, value in vars(args).items() if key != "out"}
    results: dict[str, Any] = {**run_header(), "args": arguments, "workloads": workloads}
    write_results(args.out, results, render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
