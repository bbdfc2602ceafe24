"""Router overhead: latency and CPU per query through the router vs straight to the pod.

One CPU pod process and one router process on loopback; an open-loop client sends RMC1 queries
(binary protocol, Poisson arrivals on an absolute clock) at a fixed rate, alternating phases
"direct to the pod" and "through the router" so machine noise hits both alike. CPU per query is
read from /proc for the pod and the router processes. Writes `docs/benchmarks/router.md`.
Run: `.venv/bin/python bench/router_overhead.py [--qps 200] [--seconds 15] [--rounds 2]`.

The router runs under uvicorn with the router's own HTTP protocol (`recsched_pod.http.lean_http`,
`--router-http router`, the default) or uvicorn's stock one (`--router-http uvicorn`), so the two
can be compared on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import torch

from recsched_pod.models import model_spec, random_query

READING = "**Reading"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from pod_throughput import _cpu_model, free_port, kept_tail  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_split_s(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process `pid` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split_s(pid))


# `recsched-pod` with uvicorn's `http=` option set: the CLI's own flags, settings and app.
STOCK_UVICORN_LAUNCHER = """
import sys, uvicorn
from recsched_pod.app_factory import create_role_app
from recsched_pod.cli import settings_from_args
settings, level = settings_from_args(sys.argv[1:])
uvicorn.run(create_role_app(settings), host=settings.host, port=settings.port,
            log_level=level.lower(), access_log=False, http="auto")
"""


def start(args: list[str], launcher: list[str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *(launcher or ["-m", "recsched_pod"]), *args, "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
    )


def start_router(
    port: int, pod_port: int, extra: list[str], launcher: list[str] | None = None
) -> subprocess.Popen[bytes]:
    """An RMC1 (scale 0.01) router on `port` whose CPU pool is the one endpoint at `pod_port`."""
    return start(
        [
            "--role",
            "router",
            "--model",
            "rmc1",
            "--scale",
            "0.01",
            "--port",
            str(port),
            *extra,
            "--cpu-endpoints",
            f"127.0.0.1:{pod_port}",
        ],
        launcher,
    )


def wait_ready(url: str) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def make_bodies(count: int, items: int, seed: int) -> list[tuple[bytes, dict[str, str]]]:
    spec = model_spec("rmc1", scale=0.01)
    generator = torch.Generator().manual_seed(seed)
    bodies = []
    for _ in range(count):
        dense, sparse = random_query(spec, items, generator)
        assert dense is not None
        header = {
            "inputs": [
                {
                    "name": "dense_features",
                    "datatype": "FP32",
                    "shape": list(dense.shape),
                    "parameters": {"binary_data_size": dense.numpy().nbytes},
                },
                {
                    "name": "sparse_indices",
                    "datatype": "INT64",
                    "shape": list(sparse.shape),
                    "parameters": {"binary_data_size": sparse.numpy().nbytes},
                },
            ],
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
        }
        json_part = orjson.dumps(header)
        bodies.append(
            (
                json_part + dense.numpy().tobytes() + sparse.numpy().tobytes(),
                {
                    "Inference-Header-Content-Length": str(len(json_part)),
                    "Content-Type": "application/octet-stream",
                },
            )
        )
    return bodies


async def open_loop(
    url: str, bodies: list[tuple[bytes, dict[str, str]]], qps: float, seconds: float, seed: int
) -> list[float]:
    import aiohttp

    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / qps, size=int(qps * seconds))
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:

        async def one(scheduled: float, index: int) -> None:
            body, headers = bodies[index % len(bodies)]
            async with session.post(
                url + "/v2/models/rmc1/infer", data=body, headers=headers
            ) as response:
                await response.read()
                if response.status == 200:
                    latencies.append(time.perf_counter() - scheduled)

        start_s = time.perf_counter() + 0.05
        tasks = []
        for index, scheduled in enumerate(start_s + np.cumsum(gaps)):
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(float(scheduled), index)))
        await asyncio.gather(*tasks)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qps", type=float, default=200)
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--router-http", choices=["router", "uvicorn"], default="router")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "router.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    pod_port, router_port = free_port(), free_port()
    config = Path(tempfile.mkdtemp()) / "config.json"
    config.write_text(
        json.dumps({"generation": 1, "batchSize": 64, "offloadThreshold": 4096, "workers": 2})
    )
    pod = start(
        ["--model", "rmc1", "--scale", "0.01", "--port", str(pod_port), "--config", str(config)]
    )
    router = start_router(
        router_port,
        pod_port,
        ["--config", str(config)],
        ["-c", STOCK_UVICORN_LAUNCHER] if args.router_http == "uvicorn" else None,
    )
    pod_url, router_url = f"http://127.0.0.1:{pod_port}", f"http://127.0.0.1:{router_port}"
    results: dict[str, list[dict[str, float]]] = {"direct": [], "router": []}
    try:
        wait_ready(pod_url)
        wait_ready(router_url)
        bodies = make_bodies(32, args.items, seed=1)
        asyncio.run(open_loop(pod_url, bodies, args.qps, 2, seed=0))  # warm both paths
        asyncio.run(open_loop(router_url, bodies, args.qps, 2, seed=0))
        for round_index in range(args.rounds):
            for mode, url in (("direct", pod_url), ("router", router_url)):
                pod_cpu, router_cpu = cpu_seconds(pod.pid), cpu_seconds(router.pid)
                latencies = asyncio.run(
                    open_loop(url, bodies, args.qps, args.seconds, seed=round_index)
                )
                pod_used = cpu_seconds(pod.pid) - pod_cpu
                router_used = cpu_seconds(router.pid) - router_cpu
                row = {
                    "queries": len(latencies),
                    "p50_ms": statistics.median(latencies) * 1e3,
                    "p95_ms": float(np.percentile(latencies, 95)) * 1e3,
                    "pod_cpu_ms_per_query": pod_used / len(latencies) * 1e3,
                    "router_cpu_ms_per_query": router_used / len(latencies) * 1e3,
                }
                results[mode].append(row)
                print(mode, json.dumps(row), flush=True)
    finally:
        for process in (router, pod):
            process.terminate()
            process.wait(timeout=30)
    load_after = os.getloadavg()[0]

    def mean(mode: str, key: str) -> float:
        return statistics.fmean(row[key] for row in results[mode])

    added_p50 = mean("router", "p50_ms") - mean("direct", "p50_ms")
    direct_cpu = mean("direct", "pod_cpu_ms_per_query")
    routed_cpu = mean("router", "pod_cpu_ms_per_query") + mean("router", "router_cpu_ms_per_query")
    lines = [
        "# Router overhead",
        "",
        f"Machine: {os.cpu_count()} CPUs ({_cpu_model()}). Command: `.venv/bin/python "
        f"bench/router_overhead.py {' '.join(sys.argv[1:])}`.",
        "",
        f"RMC1 scale 0.01, queries of {args.items} items (binary protocol, "
        f"{args.items * 5632 // 1024} KiB each), Poisson arrivals at {args.qps:g} QPS, one pod "
        f"with 2 workers and B = 64; {args.rounds} rounds of {args.seconds:g} s per path, "
        f"alternating. Router HTTP protocol: `{args.router_http}`. 1-minute load average "
        f"{load_before:.2f} before, {load_after:.2f} after.",
        "",
        "| path | round | queries | p50 ms | p95 ms | pod CPU ms/query | router CPU ms/query |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, rows in results.items():
        for index, row in enumerate(rows):
            lines.append(
                f"| {mode} | {index} | {row['queries']:.0f} | {row['p50_ms']:.2f} | "
                f"{row['p95_ms']:.2f} | {row['pod_cpu_ms_per_query']:.2f} | "
                f"{row['router_cpu_ms_per_query']:.2f} |"
            )
    lines += [
        "",
        f"Added p50: **{added_p50:+.2f} ms** (floor: <= 1 ms). CPU per query, pod + "
        f"router vs pod alone: **{routed_cpu:.2f} vs {direct_cpu:.2f} ms = "
        f"{routed_cpu / direct_cpu:.2f}x** (floor: <= 1.10x). The router's own CPU: "
        f"{mean('router', 'router_cpu_ms_per_query'):.2f} ms/query = "
        f"{mean('router', 'router_cpu_ms_per_query') / direct_cpu:.0%} of the pod's.",
        "",
    ]
    reading = kept_tail(args.out, READING)
    if reading:
        lines += ["", reading.rstrip("\n"), ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines[-2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
