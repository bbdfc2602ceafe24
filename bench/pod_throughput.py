"""Inference pod throughput: raw model items/s vs items/s served over HTTP, and worker scaling.

Writes `docs/benchmarks/pod.json` and `docs/benchmarks/pod.md`. Run: `.venv/bin/python
bench/pod_throughput.py [--models rmc1,wnd] [--seconds 1.5]`. Raw = a tight in-process loop, one
thread, of the graph the pod serves (the TorchScript trace, `serving_graph`), and of the eager
module for reference. Served = one pod process with one worker on loopback, queries of N = B items
sent by an async client keeping several queries in flight (enough to keep the worker busy),
binary protocol (and JSON at B = 128); served/raw compares the same graph. The client runs in a
process of its own at a lower priority (`--client-nice`, see `LoadClients`), and from B = 128 also
at normal priority for comparison; `--rounds N` repeats raw/served pairs and reports medians.
Worker scaling = the in-process worker pool with 1 and 2 workers. GIL contention = items/s of one
forward loop alone and beside a Python thread that never blocks, eager vs traced.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from harness import (
    ROOT,
    binary_bodies,
    header_line,
    json_bodies,
    load_average,
    offline_signature,
    run_header,
    running_pod,
    write_results,
)

from recsched_pod.dataplane.engine import WorkerPool, configure_process_threads
from recsched_pod.dataplane.serving_graph import Scorer, serving_graph
from recsched_pod.metrics import PodMetrics
from recsched_pod.models import MODEL_NAMES, build_model, random_query
from recsched_pod.settings import PinPolicy

BATCHES = (1, 8, 32, 128, 512, 1024)


def raw_items_per_s(scorer: Scorer, spec: Any, batch: int, seconds: float) -> float:
    dense, sparse = random_query(spec, batch, torch.Generator().manual_seed(batch))
    with torch.inference_mode():
        for _ in range(2):
            scorer(dense, sparse)
        runs, started = 0, time.perf_counter()
        while runs < 3 or time.perf_counter() - started < seconds:
            scorer(dense, sparse)
            runs += 1
        return runs * batch / (time.perf_counter() - started)


def beside_busy_thread(scorer: Scorer, spec: Any, batch: int, seconds: float) -> float:
    """Raw items/s while another thread runs Python bytecode without ever blocking."""
    stop = threading.Event()

    def spin() -> None:
        total = 0
        while not stop.is_set():
            for value in range(200):
                total ^= value

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        return raw_items_per_s(scorer, spec, batch, seconds)
    finally:
        stop.set()
        thread.join()


def gil_contention(names: list[str], scale: float, batch: int, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in names:
        model = build_model(name, scale=scale).eval()
        graph = serving_graph(model, torch.device("cpu"))
        for label, scorer in (("eager", model), (graph.mode, graph.scorer)):
            alone = raw_items_per_s(scorer, model.spec, batch, seconds)
            busy = beside_busy_thread(scorer, model.spec, batch, seconds)
            result[f"{name}@B={batch} {label}"] = {
                "alone": alone,
                "beside_busy_thread": busy,
                "ratio": busy / alone,
            }
    return result


async def served_items_per_s(
    url: str,
    name: str,
    body: bytes,
    headers: dict[str, str],
    batch: int,
    seconds: float,
    in_flight: int,
) -> float:
    import aiohttp  # lighter per request than httpx: the client shares the machine's 2 cores

    target = f"{url}/v2/models/{name}/infer"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as client:

        async def post() -> None:
            async with client.post(target, data=body, headers=headers) as response:
                await response.read()
                response.raise_for_status()

        for _ in range(2):
            await post()
        done = 0
        started = time.perf_counter()
        deadline = started + seconds

        async def sender() -> None:
            nonlocal done
            while time.perf_counter() < deadline or done < 3:
                await post()
                done += 1

        await asyncio.gather(*(sender() for _ in range(in_flight)))
        return done * batch / (time.perf_counter() - started)


def _served_in_child(*load: Any) -> float:
    return asyncio.run(served_items_per_s(*load))


class LoadClients:
    """The load generator in processes of its own. On these 2 shared cores it takes CPU the pod
    needs (its sends cost about a quarter of a core at RMC1 B = 128); in a deployment clients are
    other machines. So the reported client runs at a lower priority (`nice`), yielding the cores
    to the pod; one at normal priority, competing with the pod, is measured beside it."""

    def __init__(self, nice: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._yielding = context.Pool(1, initializer=os.nice, initargs=(nice,))
        self._competing = context.Pool(1)

    def served(self, *load: Any, competing: bool = False) -> float:
        pool = self._competing if competing else self._yielding
        return float(pool.apply(_served_in_child, load))

    def close(self) -> None:
        for pool in (self._yielding, self._competing):
            pool.close()
            pool.join()


def bench_pool(
    model: Any,
    workers: int,
    scorer: Scorer | None = None,
    pin: PinPolicy = "off",
    cpus: frozenset[int] | None = None,
) -> WorkerPool:
    """An in-process CPU worker pool whose queue never refuses a benchmark's queries."""
    return WorkerPool(
        model,
        torch.device("cpu"),
        PodMetrics("bench", "cpu", "cpu"),
        workers=workers,
        max_queue_requests=10_000,
        retry_after_ms=10,
        scorer=scorer,
        pin=pin,
        cpus=cpus,
    )


def worker_scaling(name: str, scale: float, batch: int, seconds: float) -> dict[str, float]:
    model = build_model(name, scale=scale).eval()
    dense, sparse = random_query(model.spec, batch * 8, torch.Generator().manual_seed(1))
    dense_np = None if dense is None else dense.numpy()
    result = {}
    for workers in (1, 2):
        pool = bench_pool(model, workers)

        async def drive(pool: WorkerPool = pool) -> float:
            await pool.run_query(dense_np, sparse.numpy(), batch)
            queries, started = 0, time.perf_counter()
            while queries < 2 or time.perf_counter() - started < seconds:
                await asyncio.gather(
                    *(pool.run_query(dense_np, sparse.numpy(), batch) for _ in range(2))
                )
                queries += 2
            return queries * batch * 8 / (time.perf_counter() - started)

        result[f"workers_{workers}"] = asyncio.run(drive())
        pool.close()
    result["speedup"] = result["workers_2"] / result["workers_1"]
    return result


def split_latency(name: str, scale: float, items: int, repeats: int = 30) -> dict[str, Any]:
    """Median latency of one query of `items` items alone on a 2-worker pool, by batch size:
    whether splitting a query buys parallelism (DeepRecSched's small-B side), eager vs traced."""
    model = build_model(name, scale=scale).eval()
    graph = serving_graph(model, torch.device("cpu"))
    dense, sparse = random_query(model.spec, items, torch.Generator().manual_seed(3))
    dense_np = None if dense is None else dense.numpy()
    result: dict[str, Any] = {}
    for label, scorer in (("eager", model), (graph.mode, graph.scorer)):
        pool = bench_pool(model, 2, scorer)

        async def median_ms(batch: int, pool: WorkerPool = pool) -> float:
            await pool.run_query(dense_np, sparse.numpy(), batch)
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                await pool.run_query(dense_np, sparse.numpy(), batch)
                timings.append((time.perf_counter() - started) * 1e3)
            return statistics.median(timings)

        result[label] = {batch: asyncio.run(median_ms(batch)) for batch in (1024, 512, 256, 128)}
        pool.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=",".join(MODEL_NAMES))
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--in-flight", type=int, default=3)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="raw/served pairs per batch size; medians are reported (the machine is shared)",
    )
    parser.add_argument(
        "--client-nice",
        type=int,
        default=10,
        help="niceness of the reported load generator (see LoadClients); 0 to compete",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "pod.json")
    args = parser.parse_args()
    configure_process_threads(float(os.environ.get("RECSCHED_GIL_SWITCH_INTERVAL_S", "0.0005")))
    results: dict[str, Any] = {
        "header": run_header(),
        "torch": torch.__version__,
        "scale": args.scale,
        "client_nice": args.client_nice,
        "models": {},
    }
    clients = LoadClients(args.client_nice)
    for name in args.models.split(","):
        results["models"][name] = served_rows(name, args, clients)
    clients.close()
    results["worker_scaling"] = {
        f"{name}@B={batch}": worker_scaling(name, args.scale, batch, args.seconds * 2)
        for name in ("rmc3", "wnd")
        for batch in (128, 512)
    }
    results["gil_contention"] = gil_contention(["rmc1", "wnd"], args.scale, 128, args.seconds)
    results["split_latency"] = {"rmc1@N=1024": split_latency("rmc1", args.scale, 1024)}
    results["header"]["load_average_after"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, results, render_markdown(results))
    return 0


def served_rows(name: str, args: argparse.Namespace, clients: LoadClients) -> list[dict[str, Any]]:
    """Raw and served items/s of one model at every batch size, in alternating rounds."""
    model = build_model(name, scale=args.scale).eval()
    graph = serving_graph(model, torch.device("cpu"))
    signature = offline_signature(name, args.scale)
    rows = []
    with running_pod(name, workers=1, batch=1024, scale=args.scale) as pod:
        for batch in BATCHES:
            raw_eager = raw_items_per_s(model, model.spec, batch, args.seconds)
            body, headers = binary_bodies(signature, batch, seed=batch)[0]
            load = (pod.url, name, body, headers, batch, args.seconds, args.in_flight)
            raws, served, competing = [], [], []
            for _ in range(args.rounds):
                # Alternate raw and served so machine noise hits both alike.
                raws.append(raw_items_per_s(graph.scorer, model.spec, batch, args.seconds))
                served.append(clients.served(*load))
                if batch >= 128:
                    competing.append(clients.served(*load, competing=True))
            ratios = [s / r for r, s in zip(raws, served, strict=True)]
            row = {
                "batch": batch,
                "graph": graph.mode,
                "raw_items_per_s": statistics.median(raws),
                "raw_eager_items_per_s": raw_eager,
                "served_binary_items_per_s": statistics.median(served),
                "served_over_raw": statistics.median(ratios),
                "served_over_raw_each_round": ratios,
            }
            if competing:
                row["client_competing_items_per_s"] = statistics.median(competing)
                row["client_competing_over_raw"] = statistics.median(
                    s / r for r, s in zip(raws, competing, strict=True)
                )
            if batch == 128:
                body, headers = json_bodies(signature, batch, seed=batch)[0]
                row["served_json_items_per_s"] = clients.served(
                    pod.url, name, body, headers, batch, args.seconds, args.in_flight
                )
            rows.append(row)
            print(name, json.dumps(row), flush=True)
    return rows


def render_markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Inference pod throughput",
        "",
        f"{header_line(results['header'])} Torch {results['torch']}, scale {results['scale']}; "
        "one thread (raw) and one worker (served).",
        "",
        "Items/s. Served = binary protocol over loopback with queries of N = B items, sent by "
        f"an aiohttp client on the same 2 cores at nice {results['client_nice']}, so that it "
        "yields the cores to the pod as a client on another machine would (`LoadClients`); "
        "from B = 128 a client at normal priority, competing with the pod for the cores, is "
        "measured in the same rounds (last-but-one column); "
        "the ratio is served / raw of the same graph (the pod serves the TorchScript trace "
        "when it matches the eager model: `serving_graph`), measured back to back; the eager "
        "module's raw rate is shown for reference. With several rounds (alternating raw and "
        "served pairs) the rates and the ratio are medians, and the ratio's range is shown.",
        "",
        "| model | B | raw (eager module) | raw (served graph) | served (binary) | served/raw "
        "| served/raw, client competing | served (JSON) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in results["models"].items():
        for row in rows:
            json_rate = row.get("served_json_items_per_s")
            each = row.get("served_over_raw_each_round", [])
            spread = f" ({min(each):.2f}-{max(each):.2f})" if len(each) > 1 else ""
            competing_ratio = row.get("client_competing_over_raw")
            competing = "" if competing_ratio is None else f"{competing_ratio:.2f}"
            lines.append(
                f"| {name} | {row['batch']} | {row['raw_eager_items_per_s']:,.0f} | "
                f"{row['raw_items_per_s']:,.0f} ({row['graph']}) | "
                f"{row['served_binary_items_per_s']:,.0f} | {row['served_over_raw']:.2f}{spread} | "
                f"{competing} | "
                f"{'' if json_rate is None else f'{json_rate:,.0f}'} |"
            )
    lines += [
        "",
        "## Worker scaling (in-process worker pool, queries of 8 x B items)",
        "",
        "| model@B | 1 worker items/s | 2 workers items/s | speedup |",
        "|---|---|---|---|",
    ]
    for key, row in results["worker_scaling"].items():
        lines.append(
            f"| {key} | {row['workers_1']:,.0f} | {row['workers_2']:,.0f} | {row['speedup']:.2f}x |"
        )
    lines += [
        "",
        "## GIL contention (one forward loop, alone and beside a Python thread that never blocks)",
        "",
        "| model@B graph | alone items/s | beside busy thread | ratio |",
        "|---|---|---|---|",
    ]
    for key, row in results["gil_contention"].items():
        lines.append(
            f"| {key} | {row['alone']:,.0f} | {row['beside_busy_thread']:,.0f} | "
            f"{row['ratio']:.2f} |"
        )
    lines += [
        "",
        "## Splitting one query across 2 workers (median ms of a lone query, by batch size)",
        "",
        "| query | graph | B = 1024 | B = 512 | B = 256 | B = 128 |",
        "|---|---|---|---|---|---|",
    ]
    for key, by_graph in results["split_latency"].items():
        for graph_mode, by_batch in by_graph.items():
            cells = " | ".join(f"{by_batch[b]:.1f}" for b in (1024, 512, 256, 128))
            lines.append(f"| {key} | {graph_mode} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
