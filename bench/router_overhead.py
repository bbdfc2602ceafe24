"""Router overhead: latency and CPU per query through the router vs straight to the pod.

One CPU pod process and one router process on loopback; `recsched-loadtest run` sends RMC1
queries of a fixed size (binary protocol, Poisson arrivals) at a fixed rate, alternating phases
"direct to the pod" and "through the router" so machine noise hits both alike. CPU per query is
read from /proc for the pod and the router processes. Writes `docs/benchmarks/router.md`.
Run: `.venv/bin/python bench/router_overhead.py [--qps 200] [--seconds 15] [--rounds 2]`.
The HTTP implementations are compared in `bench/http_layer.py`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from harness import (
    ROOT,
    header_line,
    kept_tail,
    load_average,
    loadtest_json,
    run_header,
    running_pod,
    running_router,
)

READING = "**Reading"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def open_loop(url: str, args: argparse.Namespace, seconds: float, seed: int) -> dict[str, float]:
    """One fixed-rate run of `recsched-loadtest`: queries answered, p50 and p95 (ms)."""
    summary = loadtest_json(
        [
            "run",
            *("--url", url, "--model", "rmc1", "--sizes", f"fixed:{args.items}"),
            *("--protocol", "binary", "--seed", str(seed), "--rate", str(args.qps)),
            *("--duration-s", str(seconds), "--warmup-s", "0"),
        ]
    )
    latency = summary["latency"]
    if latency is None:
        raise RuntimeError(f"{url}: no query answered: {summary['errors']}")
    return {"queries": summary["ok"], "p50_ms": latency["p50_ms"], "p95_ms": latency["p95_ms"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qps", type=float, default=200)
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "router.md")
    args = parser.parse_args()
    header = run_header()
    results: dict[str, list[dict[str, float]]] = {"direct": [], "router": []}
    with (
        running_pod("rmc1", workers=2, batch=64, threshold=4096) as pod,
        running_router("rmc1", [f"127.0.0.1:{pod.port}"], threshold=4096) as router,
    ):
        for url in (pod.url, router.url):  # warm both paths
            open_loop(url, args, seconds=2, seed=99)
        for round_index in range(args.rounds):
            for mode, url in (("direct", pod.url), ("router", router.url)):
                pod_cpu, router_cpu = cpu_seconds(pod.process.pid), cpu_seconds(router.process.pid)
                row = open_loop(url, args, args.seconds, seed=round_index)
                pod_used = cpu_seconds(pod.process.pid) - pod_cpu
                router_used = cpu_seconds(router.process.pid) - router_cpu
                row["pod_cpu_ms_per_query"] = pod_used / row["queries"] * 1e3
                row["router_cpu_ms_per_query"] = router_used / row["queries"] * 1e3
                results[mode].append(row)
                print(mode, row, flush=True)
    header["load_average_after"] = load_average()

    def mean(mode: str, key: str) -> float:
        return statistics.fmean(row[key] for row in results[mode])

    added_p50 = mean("router", "p50_ms") - mean("direct", "p50_ms")
    direct_cpu = mean("direct", "pod_cpu_ms_per_query")
    routed_cpu = mean("router", "pod_cpu_ms_per_query") + mean("router", "router_cpu_ms_per_query")
    lines = [
        "# Router overhead",
        "",
        header_line(header),
        "",
        f"RMC1 scale 0.01, queries of {args.items} items (binary protocol, "
        f"{args.items * 5632 // 1024} KiB each), Poisson arrivals at {args.qps:g} QPS "
        f"(`recsched-loadtest run`), one pod with 2 workers and B = 64; {args.rounds} rounds of "
        f"{args.seconds:g} s per path, alternating.",
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
