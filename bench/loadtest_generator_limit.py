"""How fast can one recsched-loadtest process offer load? (benchmark)

Starts `loadtest_fast_server.py` (a trivial loopback server in its own process), then, per HTTP
client, finds the highest constant offered rate whose achieved rate stays within 2% of the
scheduled rate, with no errors and a client send lag p99 under --max-lag-ms (a client that keeps
the rate only by sending late would pollute every latency it reports): doubling from
--start-qps, then bisection to 5%. Each probe is a --trial-s run after --warmup-s with the
production size mix (binary bodies), for Poisson (the default) and constant arrivals.
Prints one JSON line per probe and a summary; with --out, writes everything as JSON.

    .venv/bin/python bench/loadtest_generator_limit.py [--clients aiohttp,httpx] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import load_average, run_header

from recsched_loadtest.arrivals import constant_rate
from recsched_loadtest.capacity import run_workload
from recsched_loadtest.driver import DriveOptions
from recsched_loadtest.oip_client import fetch_signature
from recsched_loadtest.sizes import parse_size_spec
from recsched_loadtest.stats import RunSummary
from recsched_loadtest.transports import make_transport
from recsched_loadtest.workload import WorkloadSpec

SERVER = Path(__file__).with_name("loadtest_fast_server.py")


def _sustained(summary: RunSummary, max_lag_ms: float) -> bool:
    return (
        not summary.errors
        and summary.achieved_qps >= 0.98 * summary.scheduled_qps
        and summary.send_lag_p99_ms <= max_lag_ms
    )


async def _probe(
    url: str, client: str, rate_qps: float, args: argparse.Namespace, arrivals: str
) -> RunSummary:
    signature = await fetch_signature(url, "fast")
    spec = WorkloadSpec(
        profile=constant_rate(rate_qps, args.warmup_s + args.trial_s),
        arrivals=arrivals,
        sizes=parse_size_spec(args.sizes),
        seed=1,
    )
    transport = make_transport(client, url, "fast", 4096)
    try:
        options = DriveOptions(warmup_s=args.warmup_s, max_in_flight=4096, request_timeout_s=10.0)
        return await run_workload(transport, signature, spec, options)
    finally:
        await transport.aclose()


def _row(
    client: str, rate_qps: float, summary: RunSummary, arrivals: str, max_lag_ms: float
) -> dict[str, Any]:
    return {
        "client": client,
        "arrivals": arrivals,
        "offered_qps": rate_qps,
        "scheduled_qps": round(summary.scheduled_qps, 1),
        "achieved_qps": round(summary.achieved_qps, 1),
        "ratio": round(summary.achieved_qps / max(summary.scheduled_qps, 1e-9), 4),
        "p50_ms": round(summary.latency.p50_ms, 2) if summary.latency else None,
        "p99_ms": round(summary.latency.p99_ms, 2) if summary.latency else None,
        "send_lag_p99_ms": round(summary.send_lag_p99_ms, 2),
        "errors": summary.errors,
        "within_2pct": not summary.errors and summary.achieved_qps >= 0.98 * summary.scheduled_qps,
        "sustained": _sustained(summary, max_lag_ms),
    }


async def _find_limit(
    url: str, client: str, arrivals: str, args: argparse.Namespace
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    low, high = 0.0, None
    rate = args.start_qps
    for _ in range(args.max_probes):
        summary = await _probe(url, client, rate, args, arrivals)
        rows.append(_row(client, rate, summary, arrivals, args.max_lag_ms))
        print(json.dumps(rows[-1]), flush=True)
        if rows[-1]["sustained"]:
            low = rate
        else:
            high = rate
        if high is None:
            rate *= 2
        elif low == 0.0:
            rate = high / 2
        elif high / low <= 1.05:
            break
        else:
            rate = (low * high) ** 0.5
    return {
        "client": client,
        "arrivals": arrivals,
        "limit_qps": round(low, 1),
        "first_failing_qps": None if high is None else round(high, 1),
        "probes": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="aiohttp,httpx")
    parser.add_argument("--start-qps", type=float, default=250.0)
    parser.add_argument("--trial-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--sizes", default="production")
    parser.add_argument("--max-probes", type=int, default=12)
    parser.add_argument("--arrivals", default="poisson,constant")
    parser.add_argument("--max-lag-ms", type=float, default=10.0)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    header = run_header()
    server = subprocess.Popen([sys.executable, str(SERVER)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}"

        async def run_all() -> list[dict[str, Any]]:
            return [
                await _find_limit(url, client, arrivals, args)
                for client in args.clients.split(",")
                for arrivals in args.arrivals.split(",")
            ]

        try:
            import uvloop

            results = uvloop.run(run_all())
        except ImportError:
            results = asyncio.run(run_all())
    finally:
        server.terminate()
        server.wait(timeout=10)
    document = {
        **header,
        "load_average_after": load_average(),
        "settings": vars(args),
        "results": results,
    }
    for result in results:
        print(
            f"{result['client']} {result['arrivals']}: highest sustained rate "
            f"{result['limit_qps']:.0f} QPS "
            f"(first failing {result['first_failing_qps']})"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
