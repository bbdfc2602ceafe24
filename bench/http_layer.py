"""The HTTP layer, hand-written vs well-kept, in one run: does `lean_http` / `upstream_client`
earn its place?

Two figures, each with every implementation measured in the same interleaved rounds:

* the pod's served/raw ratio (RMC1, one worker, queries of N = B items, binary protocol): raw =
  the served graph in a tight loop in this process, served = a pod process under each HTTP server
  protocol (`--http-server lean|httptools`, `PodSettings.http_server`), loaded by
  `pod_throughput.LoadClients`, ratio per round against that round's raw rate;
* CPU per query at a fixed open-loop rate (`recsched-loadtest run`, Poisson arrivals, 64-item
  queries): the pod's own, straight to each pod, and the router's own, for each router HTTP
  server x upstream client (`PodSettings.upstream_client lean|aiohttp`), read from /proc.

Round r runs every implementation once, in an order rotated by r, so a slow patch of the shared
machine does not land on one implementation. Reported: medians, ranges, and the paired
per-round difference to the hand-written code. Writes `docs/benchmarks/http_layer.{json,md}`.
Run: `.venv/bin/python bench/http_layer.py [--rounds 5]` (under the bench lock on a shared host).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from harness import (
    LOADTEST,
    POD,
    ROOT,
    Running,
    binary_bodies,
    header_line,
    load_average,
    loadtest_json,
    offline_signature,
    run_header,
    running_pod,
    running_router,
    write_results,
)
from pod_throughput import LoadClients, raw_items_per_s

from recsched_pod.dataplane.engine import configure_process_threads
from recsched_pod.dataplane.serving_graph import serving_graph
from recsched_pod.models import build_model

MODEL = "rmc1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVERS = ("lean", "httptools")
ROUTERS = (("lean", "lean"), ("httptools", "lean"), ("lean", "aiohttp"), ("httptools", "aiohttp"))


def launcher(http_server: str, upstream_client: str = "lean") -> tuple[str, ...]:
    """`recsched-pod` with the implementations picked by their settings' environment variables."""
    return (
        "env",
        f"RECSCHED_HTTP_SERVER={http_server}",
        f"RECSCHED_UPSTREAM_CLIENT={upstream_client}",
        *POD,
    )


def cpu_s(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process `pid` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def rotated(items: list[Any], by: int) -> list[Any]:
    shift = by % len(items)
    return items[shift:] + items[:shift]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "rounds": values,
    }


def paired(candidate: list[float], reference: list[float]) -> dict[str, Any]:
    """Per-round `candidate - reference`: its median and range (same rounds, same machine)."""
    return summary([c - r for c, r in zip(candidate, reference, strict=True)])


def served_over_raw(args: argparse.Namespace) -> dict[str, Any]:
    """Served/raw per round for each pod HTTP server, at each batch size."""
    model = build_model(MODEL, scale=args.scale).eval()
    graph = serving_graph(model, torch.device("cpu"))
    signature = offline_signature(MODEL, args.scale)
    clients = LoadClients(args.client_nice)
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        pods = {
            server: stack.enter_context(
                running_pod(MODEL, workers=1, batch=1024, launcher=launcher(server))
            )
            for server in SERVERS
        }
        for batch in args.batches:
            body, headers = binary_bodies(signature, batch, seed=batch)[0]
            ratios: dict[str, list[float]] = {server: [] for server in SERVERS}
            for round_index in range(args.rounds):
                raw = raw_items_per_s(graph.scorer, model.spec, batch, args.pod_seconds)
                for server in rotated(list(SERVERS), round_index):
                    load = (pods[server].url, MODEL, body, headers, batch, args.pod_seconds, 3)
                    ratios[server].append(clients.served(*load) / raw)
                print(f"B={batch} round {round_index}: raw {raw:,.0f} items/s", end="")
                print("".join(f", {s} {ratios[s][-1]:.3f}" for s in SERVERS), flush=True)
            results[f"B={batch}"] = {
                **{server: summary(ratios[server]) for server in SERVERS},
                "lean_minus_httptools": paired(ratios["lean"], ratios["httptools"]),
            }
    clients.close()
    return results


def open_loop(url: str, args: argparse.Namespace, seed: int) -> tuple[int, float]:
    """One fixed-rate run: the queries answered and their p50 latency (ms)."""
    summary_json = loadtest_json(
        [
            "run",
            *("--url", url, "--model", MODEL, "--sizes", f"fixed:{args.items}"),
            *("--protocol", "binary", "--seed", str(seed), "--rate", str(args.qps)),
            *("--duration-s", str(args.router_seconds), "--warmup-s", "0"),
        ]
    )
    if summary_json["latency"] is None:
        raise RuntimeError(f"{url}: no query answered: {summary_json['errors']}")
    return int(summary_json["ok"]), float(summary_json["latency"]["p50_ms"])


def cpu_per_query(args: argparse.Namespace) -> dict[str, Any]:
    """Pod CPU per query straight to each pod, router CPU per query for each router variant."""
    rows: dict[str, dict[str, list[float]]] = {}
    with contextlib.ExitStack() as stack:
        pods: dict[str, Running] = {
            server: stack.enter_context(
                running_pod(MODEL, workers=2, batch=64, threshold=4096, launcher=launcher(server))
            )
            for server in SERVERS
        }
        paths: list[tuple[str, Running, Running | None]] = [
            (f"direct, pod {server}", pods[server], None) for server in SERVERS
        ]
        for server, client in ROUTERS:
            router = stack.enter_context(
                running_router(
                    MODEL,
                    [f"127.0.0.1:{pods[server].port}"],
                    threshold=4096,
                    launcher=launcher(server, client),
                )
            )
            paths.append((f"router {server} + client {client}", pods[server], router))
        for url in {path[2].url if path[2] else path[1].url for path in paths}:
            open_loop(url, argparse.Namespace(**{**vars(args), "router_seconds": 2}), seed=99)
        for round_index in range(args.rounds):
            for name, pod, router in rotated(paths, round_index):
                front = router or pod
                pod_before = cpu_s(pod.process.pid)
                front_before = cpu_s(front.process.pid)
                queries, p50_ms = open_loop(front.url, args, seed=round_index)
                pod_after, front_after = cpu_s(pod.process.pid), cpu_s(front.process.pid)
                row = rows.setdefault(name, {"queries": [], "p50_ms": [], "pod_ms": []})
                row["queries"].append(queries)
                row["p50_ms"].append(p50_ms)
                row["pod_ms"].append((sum(pod_after) - sum(pod_before)) / queries * 1e3)
                if router is not None:
                    user, system = (
                        after - before
                        for after, before in zip(front_after, front_before, strict=True)
                    )
                    row.setdefault("router_ms", []).append((user + system) / queries * 1e3)
                    row.setdefault("router_user_ms", []).append(user / queries * 1e3)
                    row.setdefault("router_system_ms", []).append(system / queries * 1e3)
                print(name, {key: round(values[-1], 3) for key, values in row.items()}, flush=True)
    result = {
        name: {key: summary(values) for key, values in row.items()} for name, row in rows.items()
    }
    reference = rows["router lean + client lean"]["router_ms"]
    for name, row in rows.items():
        if "router_ms" in row and row["router_ms"] is not reference:
            result[name]["router_ms_minus_lean_lean"] = paired(row["router_ms"], reference)
    result["direct, pod httptools"]["pod_ms_minus_lean"] = paired(
        rows["direct, pod httptools"]["pod_ms"], rows["direct, pod lean"]["pod_ms"]
    )
    return result


def _cell(stats: dict[str, Any], digits: int = 3) -> str:
    return f"{stats['median']:.{digits}f} ({stats['min']:.{digits}f}-{stats['max']:.{digits}f})"


def render(results: dict[str, Any]) -> str:
    config = results["config"]
    lines = [
        "# The HTTP layer: hand-written protocol code vs uvicorn's httptools and aiohttp",
        "",
        header_line(results["header"]),
        "",
        f"{config['rounds']} interleaved rounds (each round runs every implementation once, in "
        "an order rotated per round); cells are median (min-max) over rounds.",
        "",
        f"## The pod's served/raw ratio ({MODEL}, one worker, binary, client at nice "
        f"{config['client_nice']}, {config['pod_seconds']:g} s per measurement)",
        "",
        "| B | lean_http | httptools | lean - httptools, paired per round |",
        "|---|---|---|---|",
    ]
    for batch, row in results["served_over_raw"].items():
        cells = " | ".join(_cell(row[key]) for key in (*SERVERS, "lean_minus_httptools"))
        lines.append(f"| {batch.removeprefix('B=')} | {cells} |")
    if not results["cpu_per_query"]:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"## CPU per query, ms ({config['items']}-item queries at {config['qps']:g} QPS, "
        f"{config['router_seconds']:g} s per path per round, `recsched-loadtest run`)",
        "",
        "| path | queries | p50 ms | pod CPU ms/query | router CPU ms/query (user + system) | "
        "minus lean (+ lean), paired per round |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results["cpu_per_query"].items():
        router = ""
        if "router_ms" in row:
            router = (
                f"{_cell(row['router_ms'])} ({row['router_user_ms']['median']:.3f} + "
                f"{row['router_system_ms']['median']:.3f})"
            )
        difference = row.get("router_ms_minus_lean_lean") or row.get("pod_ms_minus_lean")
        lines.append(
            f"| {name} | {row['queries']['median']:.0f} | {_cell(row['p50_ms'], 2)} | "
            f"{_cell(row['pod_ms'])} | {router} | "
            f"{'' if difference is None else _cell(difference)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument(
        "--batches", type=lambda text: [int(b) for b in text.split(",")], default=[8, 128]
    )
    parser.add_argument("--pod-seconds", type=float, default=2.0)
    parser.add_argument("--client-nice", type=int, default=10)
    parser.add_argument("--qps", type=float, default=200)
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--router-seconds", type=float, default=8.0)
    parser.add_argument("--skip-pod", action="store_true", help="only the CPU-per-query part")
    parser.add_argument("--skip-cpu", action="store_true", help="only the served/raw part")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks" / "http_layer.json"
    )
    args = parser.parse_args()
    header = run_header()
    configure_process_threads(0.0005)  # the pod's own GIL switch interval, for the raw loop
    results: dict[str, Any] = {
        "header": header,
        "config": {k: v for k, v in vars(args).items() if k != "out"},
    }
    results["config"]["loadtest"] = " ".join(LOADTEST[1:])
    results["served_over_raw"] = {} if args.skip_pod else served_over_raw(args)
    results["cpu_per_query"] = {} if args.skip_cpu else cpu_per_query(args)
    header["load_average_after"] = load_average()
    results["config"]["batches"] = args.batches
    write_results(args.out, results, render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
