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

Writes docs/benchmarks/pinning.json and docs/benchmarks/pinning.md (keeping its hand-written
"## Reading").
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from prometheus_client.parser import text_string_to_metric_families

from recsched_pod.dataplane.engine import allowed_cpus, configure_process_threads
from recsched_pod.dataplane.serving_graph import Scorer, serving_graph
from recsched_pod.models import RecommendationModel, build_model, random_query

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pod_throughput import READING, _cpu_model, bench_pool, kept_tail
from simulator_validation import running_pod

ROOT = Path(__file__).resolve().parents[1]
QUERIES = 40
LOADTEST = [sys.executable, "-m", "recsched_loadtest", "run"]


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
    pool = bench_pool(
        query.model,
        2,
        query.scorer,
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


def pod_duration_buckets(url: str) -> list[tuple[float, float]]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return [
        (float(sample.labels["le"]), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "recsched_query_duration_seconds_bucket"
    ]


def bucket_quantile_ms(
    before: list[tuple[float, float]], after: list[tuple[float, float]]
) -> float:
    """p95 of the queries between two scrapes, interpolated in buckets as Prometheus does."""
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    rank = 0.95 * counts[-1][1]
    lower, below = 0.0, 0.0
    for le, count in counts:
        if count >= rank:
            return 1e3 * (lower + (le - lower) * (rank - below) / max(count - below, 1e-9))
        lower, below = le, count
    return float("nan")


def set_batch(url: str, batch: int, generation: int) -> None:
    body = {"generation": generation, "batchSize": batch, "offloadThreshold": 1025, "workers": 2}
    request = urllib.request.Request(
        f"{url}/admin/config",
        data=json.dumps(body).encode(),
        method="PUT",
        # running_pod's admin token
        headers={"Authorization": "Bearer validation", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert json.load(reply)["applied"]


def over_http(
    sizes: str,
    qps: float,
    seconds: float,
    pin: str,
    batches: list[int],
    seed: int,
    arrivals: str = "poisson",
) -> dict[str, Any]:
    """p95 by batch size of an RMC1 pod with 2 workers (`--pin-workers pin`) under load."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with running_pod("rmc1", 2, batches[0], workdir, ("--pin-workers", pin)) as url:
            workload = ["--url", url, "--model", "rmc1", "--sizes", sizes, "--rate", str(qps)]
            workload += ["--arrivals", arrivals, "--seed", str(seed), "--json", "--quiet"]
            # A first window after start-up runs slower: warm the pod up before measuring.
            subprocess.run(
                [*LOADTEST, *workload, "--duration-s", "5"], check=True, capture_output=True
            )
            for generation, batch in enumerate(batches, start=2):
                set_batch(url, batch, generation)
                before = pod_duration_buckets(url)
                report = subprocess.run(
                    [*LOADTEST, *workload, "--duration-s", str(seconds), "--warmup-s", "2"],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                latency = json.loads(report.stdout)["latency"]
                result[str(batch)] = {
                    "pod_p95_ms": bucket_quantile_ms(before, pod_duration_buckets(url)),
                    "client_p95_ms": latency["p95_ms"],
                    "client_median_ms": latency["p50_ms"],
                }
    return result


def run_header(args: argparse.Namespace) -> dict[str, Any]:
    """The machine, time and arguments of a bench run, for its JSON and its report."""
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "processor": _cpu_model(),
            "load_average": round(os.getloadavg()[0], 2),
        },
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "args": {k: v for k, v in vars(args).items() if k != "out"},
    }


def write_results(out: Path, results: dict[str, Any], report: str) -> None:
    """The JSON to `out`, the report beside it as .md, keeping the report's hand-written Reading."""
    out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    path = out.with_suffix(".md")
    reading = kept_tail(path, READING)
    path.write_text(report + ("\n" + reading if reading else ""), encoding="utf-8")
    print(report)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per batch size and figure, the median over rounds."""
    return {
        batch: {key: statistics.median(run[batch][key] for run in runs) for key in runs[0][batch]}
        for batch in runs[0]
    }


def render(results: dict[str, Any]) -> str:
    machine, args = results["machine"], results["args"]
    items = args["items"]
    lines = [
        "# Pinned vs unpinned model workers",
        "",
        f"Command: `.venv/bin/python bench/worker_pinning.py --rounds {args['rounds']} --items "
        f"{items} --qps {args['qps']} --seconds {args['seconds']}`. Machine: {machine['cpus']} "
        f"CPUs ({machine['processor']}), load average {machine['load_average']} at the start, "
        f"{results['date']}. Medians over {args['rounds']} interleaved rounds.",
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
            run = over_http(
                f"fixed:{args.items}", args.qps, args.seconds, mode, batches, round_index
            )
            runs["http"].setdefault(mode, []).append(run)
            print(mode, "http", json.dumps(run), flush=True)
    results: dict[str, Any] = {
        **run_header(args),
        "in_process": {
            mode: {gap: medians(gap_runs) for gap, gap_runs in by_gap.items()}
            for mode, by_gap in runs["in_process"].items()
        },
        "http": {mode: medians(mode_runs) for mode, mode_runs in runs["http"].items()},
        "runs": runs,
    }
    write_results(args.out, results, render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
