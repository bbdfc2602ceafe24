"""What the real-loop tuner can win on this machine: an RMC1 pod's p95 at each batch size.

One pod (scale 0.01, 2 workers, `--pin-workers auto`) under the load generator; for each round
the batch size steps through `--batches`, each held for `--seconds` of load, and the p95 of the
pod's own query-duration histogram (what the tuner reads through Prometheus) is recorded with the
client's. Two workloads by default: the one the real-loop test used first (production sizes,
Poisson 15 QPS) and the one it uses now (large queries, constant 8 QPS); see
tests/operator/test_tuning_real_loop.py.

    .venv/bin/python bench/batch_landscape.py [--rounds 3] [--seconds 12]

Writes docs/benchmarks/batch_landscape.json and docs/benchmarks/batch_landscape.md (keeping its
hand-written "## Reading").
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from worker_pinning import over_http, run_header, write_results

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "production sizes, Poisson 15 QPS": ("production", 15.0, "poisson"),
    "large queries (lognormal 6.5, 0.4), constant 8 QPS": ("lognormal:6.5,0.4", 8.0, "constant"),
}


def render(results: dict[str, Any]) -> str:
    args, machine = results["args"], results["machine"]
    lines = [
        "# Batch-size landscape of the real-loop workloads",
        "",
        f"Command: `.venv/bin/python bench/batch_landscape.py --rounds {args['rounds']} "
        f"--seconds {args['seconds']} --batches {args['batches']}`. "
        f"Machine: {machine['cpus']} CPUs ({machine['processor']}), "
        f"load average {machine['load_average']} at the start, {results['date']}. One RMC1 pod, "
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
            run = over_http(sizes, qps, args.seconds, "auto", batches, round_index, arrivals)
            workloads[name].append(run)
            print(name, json.dumps(run), flush=True)
    results: dict[str, Any] = {**run_header(args), "workloads": workloads}
    write_results(args.out, results, render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
