"""Pinned vs unpinned model workers: latency of a query split across 2 workers.

Unpinned, two worker threads woken together after an idle gap often start on the same CPU and
share it until the kernel balances them, so a query split in two runs little faster than whole.
This bench shows it twice, interleaving pinned and unpinned runs (the machine is shared):

* in process: a 2-worker pool (RMC1 scale 0.01, the TorchScript graph the pod serves) runs lone
  queries of `--items` items at B = items, items/2, items/4, back to back and with an idle gap
  between queries (light traffic), pinned one worker per CPU or not;
* over HTTP: a pod process (`--pin-workers on|off`, 2 workers) under the load generator, Poisson
  arrivals of `--items`-item queries at `--qps`, p95 of the pod's own query-duration histogram
  (what the tuner reads) and the client's.

    .venv/bin/python bench/worker_pinning.py [--rounds 2] [--items 1024] [--qps 2]

Writes docs/benchmarks/pinning.json and its tables to docs/benchmarks/pinning.md (the reading
is in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
import numpy as np
import numpy.typing as npt
import torch
from batch_landscape import p95_by_batch, run_line

from recsched_pod.dataplane.engine import WorkerPool, allowed_cpus, configure_process_threads
from recsched_pod.dataplane.serving_graph import Scorer, serving_graph
from recsched_pod.metrics import PodMetrics
from recsched_pod.models import RecommendationModel, build_model, random_query

ROOT = Path(__file__).resolve().parents[1]
QUERIES = 40


@dataclass(frozen=True)
class LoneQuery:
    """The RMC1 model, the graph the pod serves, and one query, built once for every run."""

    model: RecommendationModel
    scorer: Scorer
    dense: npt.NDArray[np.float32] | None
    sparse: npt.NDArray[np.int64]

    @classmethod
    def build(cls, items: int) -> LoneQuery:
        model = build_model("rmc1", scale=0.01).eval()
        graph = serving_graph(model, torch.device("cpu"))
        dense, sparse = random_query(model.spec, items, torch.Generator().manual_seed(3))
        return cls(model, graph.scorer, None if dense is None else dense.numpy(), sparse.numpy())


def in_process(query: LoneQuery, gap_s: float, pinned: bool, batches: list[int]) -> dict[str, Any]:
    pool = WorkerPool(
        query.model,
        torch.device("cpu"),
        PodMetrics("bench", "cpu", "cpu"),
        workers=2,
        max_queue_requests=10_000,  # a benchmark's queries are never refused
        retry_after_ms=10,
        scorer=query.scorer,
        pin="on" if pinned else "off",
        cpus=frozenset(sorted(allowed_cpus())[:2]),
    )

    async def latencies_ms(batch: int) -> list[float]:
        await pool.run_query(query.dense, query.sparse, batch)
        timings = []
        for _ in range(QUERIES):
            if gap_s:
                await asyncio.sleep(gap_s)
            started = time.perf_counter()
            await pool.run_query(query.dense, query.sparse, batch)
            timings.append((time.perf_counter() - started) * 1e3)
        return timings

    try:
        return {str(b): summary(asyncio.run(latencies_ms(b))) for b in batches}
    finally:
        pool.close()


def summary(timings: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(timings), "p95_ms": float(np.percentile(timings, 95))}


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per batch size and figure, the median over rounds."""
    return {
        batch: {key: statistics.median(run[batch][key] for run in runs) for key in runs[0][batch]}
        for batch in runs[0]
    }


def render(results: dict[str, Any]) -> str:
    args = results["args"]
    items = args["items"]
    lines = [
        "# Pinned vs unpinned model workers",
        "",
        f"Command: `.venv/bin/python bench/worker_pinning.py --rounds {args['rounds']} --items "
        f"{items} --qps {args['qps']} --seconds {args['seconds']}`. {run_line(results)} "
        f"Medians over {args['rounds']} interleaved rounds.",
        "",
    ]
    for gap_key, title in (("gap_0", "back to back"), ("gap_50ms", "50 ms idle between queries")):
        lines += [
            f"## In process: a lone {items}-item query on a 2-worker pool, {title}",
            "",
            "| B | unpinned median ms | unpinned p95 ms | pinned median ms | pinned p95 ms |",
            "|---|---|---|---|---|",
        ]
        off, on = results["in_process"]["off"][gap_key], results["in_process"]["on"][gap_key]
        for batch in off:
            lines.append(
                f"| {batch} | {off[batch]['median_ms']:.1f} | {off[batch]['p95_ms']:.1f} | "
                f"{on[batch]['median_ms']:.1f} | {on[batch]['p95_ms']:.1f} |"
            )
        lines.append("")
    lines += [
        f"## Over HTTP: a pod with 2 workers, {items}-item queries, Poisson {args['qps']} QPS, "
        f"{args['seconds']} s per B",
        "",
        "p95 of the pod's query-duration histogram (what the tuner reads) and the client's.",
        "",
        "| B | unpinned pod p95 ms | pinned pod p95 ms | unpinned client p95 ms | "
        "pinned client p95 ms |",
        "|---|---|---|---|---|",
    ]
    off, on = results["http"]["off"], results["http"]["on"]
    for batch in off:
        lines.append(
            f"| {batch} | {off[batch]['pod_p95_ms']:.1f} | {on[batch]['pod_p95_ms']:.1f} | "
            f"{off[batch]['client_p95_ms']:.1f} | {on[batch]['client_p95_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--items", type=int, default=1024)
    parser.add_argument("--qps", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "pinning.json")
    args = parser.parse_args()
    if len(allowed_cpus()) < 2:
        print("needs thread affinity and at least 2 CPUs", file=sys.stderr)
        return 2
    configure_process_threads(0.0005)
    batches = [args.items, args.items // 2, args.items // 4]
    query = LoneQuery.build(args.items)
    runs: dict[str, Any] = {"in_process": {}, "http": {}}
    for round_index in range(args.rounds):
        for pinned in (False, True) if round_index % 2 == 0 else (True, False):
            mode = "on" if pinned else "off"
            for gap_key, gap_s in (("gap_0", 0.0), ("gap_50ms", 0.05)):
                run = in_process(query, gap_s, pinned, batches)
                runs["in_process"].setdefault(mode, {}).setdefault(gap_key, []).append(run)
                print(mode, gap_key, json.dumps(run), flush=True)
            run = p95_by_batch(
                f"fixed:{args.items}", args.qps, args.seconds, mode, batches, round_index
            )
            runs["http"].setdefault(mode, []).append(run)
            print(mode, "http", json.dumps(run), flush=True)
    results: dict[str, Any] = {
        **harness.run_header(),
        "args": {key: value for key, value in vars(args).items() if key != "out"},
        "in_process": {
            mode: {gap: medians(gap_runs) for gap, gap_runs in by_gap.items()}
            for mode, by_gap in runs["in_process"].items()
        },
        "http": {mode: medians(mode_runs) for mode, mode_runs in runs["http"].items()},
        "runs": runs,
    }
    harness.write_results(args.out, results, render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
