"""The tuner's cost per decision: policy CPU time, and the PromQL queries one observation sends.

Policy: `decide_next_config` timed alone (process CPU time, one thread) on every decision of
simulated runs of the wide study's cases (searching, converged, re-tuning), so no simulation time
is counted. Observation: `observations.PrometheusSource.observe` against a real Prometheus (the
Debian binary, started through tests/support/prometheus_server.py) scraping a metrics endpoint
that serves every series the source reads, for `--recmodels` RecModels at once, each with a
router, a CPU and a GPU pool; the queries are counted and timed by wrapping the client's
`custom_query`, the one call the source makes per PromQL expression. CPU time is this process's
(the operator's side: HTTP client and JSON parsing); Prometheus's own CPU over the decisions is
read from /proc (it includes its scraping of the endpoint meanwhile, so it is an upper bound).
Run it under `flock /tmp/recsched-bench.lock`.

    flock /tmp/recsched-bench.lock .venv/bin/python bench/tuner_cost.py [--recmodels 200]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from harness import load_average, run_header

from recsched_operator.tuner import (
    SloTarget,
    TuningMode,
    TuningSettings,
    decide_next_config,
    initial_state,
)
from recsched_operator.tuner.prometheus_source import PrometheusSource
from recsched_operator.tuner.simulation.profiles import gpu_profile_path, profile_names
from recsched_operator.tuner.simulation.study import design, prepare
from recsched_operator.tuner.simulation.tuning_run import SimulatedService

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' Prometheus launcher, reused as is
from support.prometheus_server import running_prometheus  # noqa: E402

GPU_PROFILE = gpu_profile_path("nvidia-h200")
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))
ITEM_BUCKETS = (16, 64, 256, 1024, float("inf"))


def policy_cost(cases: int, intervals: int) -> dict[str, Any]:
    """CPU seconds of `decide_next_config` per decision over simulated runs."""
    times_us: list[float] = []
    phases: dict[str, int] = {}
    selected = design(profile_names())[:: max(1, 96 // cases)][:cases]
    for case in selected:
        prepared = prepare(case, GPU_PROFILE)
        service = SimulatedService(prepared.scenario, case.load * prepared.optimum_qps)
        settings, slo = TuningSettings(), prepared.slo
        rng = np.random.default_rng(1)
        state, config, now_s = initial_state(), prepared.start, 0.0
        for _ in range(intervals):
            now_s += settings.cooldown_s + slo.window_s
            observation = service.observe(config, now_s, slo.window_s, rng)
            started = time.process_time_ns()
            decision, state = decide_next_config(
                observation, config, state, prepared.bounds, slo, settings, TuningMode.AUTO, now_s
            )
            times_us.append((time.process_time_ns() - started) / 1000)
            phases[state.phase] = phases.get(state.phase, 0) + 1
            config = decision.config
    return {
        "decisions": len(times_us),
        "cases": len(selected),
        "phases": phases,
        "median_us": statistics.median(times_us),
        "p99_us": float(np.percentile(times_us, 99)),
        "max_us": max(times_us),
    }


def exposition(recmodels: int, scrape: int) -> bytes:
    """Every series PrometheusSource reads, for `recmodels` RecModels, grown by one scrape's
    worth of traffic (100 queries per RecModel: 80 on CPU, 20 on GPU)."""
    lines: list[str] = []
    for r in range(recmodels):
        name = f"m{r}"
        for metric, pools in (
            ("recsched_router_query_duration_seconds", (("router", 100),)),
            ("recsched_query_duration_seconds", (("cpu", 80), ("gpu", 20))),
        ):
            for pool, count in pools:
                labels = f'recmodel="{name}",pool="{pool}"'
                for i, bound in enumerate(BUCKETS_S):
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    share = min(1.0, (i + 1) / (len(BUCKETS_S) - 2))
                    lines.append(f'{metric}_bucket{{{labels},le="{le}"}} {count * share * scrape}')
                lines.append(f"{metric}_count{{{labels}}} {count * scrape}")
                lines.append(f"{metric}_sum{{{labels}}} {0.02 * count * scrape}")
        labels = f'recmodel="{name}",pool="router"'
        for i, bound in enumerate(ITEM_BUCKETS):
            le = "+Inf" if bound == float("inf") else repr(bound)
            share = min(1.0, (i + 1) / (len(ITEM_BUCKETS) - 1))
            lines.append(
                f'recsched_query_items_bucket{{{labels},le="{le}"}} {100 * share * scrape}'
            )
        lines.append(f"recsched_query_items_count{{{labels}}} {100 * scrape}")
        lines.append(f"recsched_query_items_sum{{{labels}}} {15600 * scrape}")
        for pool, workers in (("cpu", 16), ("gpu", 1)):
            labels = f'recmodel="{name}",pool="{pool}"'
            lines.append(f"recsched_request_compute_seconds_sum{{{labels}}} {0.3 * scrape}")
            lines.append(f"recsched_request_compute_seconds_count{{{labels}}} {50 * scrape}")
            lines.append(f"recsched_workers{{{labels}}} {workers}")
            lines.append(f"recsched_rejected_queries_total{{{labels}}} 0")
        lines.append(f'recsched_batch_size_items{{recmodel="{name}",pool="cpu"}} 64')
        lines.append(f'recsched_offload_threshold_items{{recmodel="{name}",pool="router"}} 256')
    return ("\n".join(lines) + "\n").encode()


class Target:
    """A metrics endpoint whose counters grow by one scrape's worth per scrape."""

    def __init__(self, recmodels: int) -> None:
        self.recmodels = recmodels
        self.scrapes = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.scrapes += 1
                body = exposition(outer.recmodels, outer.scrapes)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def observation_cost(recmodels: int, decisions: int, window_s: float) -> dict[str, Any]:
    slo = SloTarget(95, 50.0, window_s)
    per_decision: list[dict[str, float]] = []
    with (
        Target(recmodels) as target,
        running_prometheus(targets=[target], scrape_interval_s=1.0) as prom,
    ):
        prom.wait_for_targets_up(1)
        deadline = time.monotonic() + window_s + 30
        while time.monotonic() < deadline:
            source = PrometheusSource(prom.url)
            if source.observe("m0", None, slo, time.time()).error is None and (
                time.monotonic() > deadline - 30 + 2
            ):
                break
            time.sleep(1.0)
        source = PrometheusSource(prom.url)
        client = source._client  # the one object the source sends PromQL through
        original = client.custom_query
        calls: list[float] = []

        def counted(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                calls.append(time.perf_counter() - started)

        client.custom_query = counted
        prometheus_cpu_before = _process_cpu_s(prom.process.pid)
        errors = 0
        for index in range(decisions):
            calls.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            observation = source.observe(f"m{index % recmodels}", None, slo, time.time())
            per_decision.append(
                {
                    "queries": len(calls),
                    "wall_ms": (time.perf_counter() - wall) * 1000,
                    "cpu_ms": (time.process_time() - cpu) * 1000,
                    "query_ms": statistics.median(calls) * 1000 if calls else 0.0,
                }
            )
            errors += observation.error is not None
        prometheus_cpu_s = _process_cpu_s(prom.process.pid) - prometheus_cpu_before

    def median(key: str) -> float:
        return statistics.median(d[key] for d in per_decision)

    def spread(key: str) -> list[float]:
        values = [d[key] for d in per_decision]
        return [round(min(values), 2), round(max(values), 2)]

    return {
        "recmodels": recmodels,
        "decisions": decisions,
        "errors": errors,
        "queries_per_decision": sorted({int(d["queries"]) for d in per_decision}),
        "wall_ms_median": round(median("wall_ms"), 2),
        "wall_ms_range": spread("wall_ms"),
        "operator_cpu_ms_median": round(median("cpu_ms"), 2),
        "operator_cpu_ms_range": spread("cpu_ms"),
        "query_ms_median": round(median("query_ms"), 2),
        "prometheus_cpu_ms_per_decision": round(prometheus_cpu_s * 1000 / decisions, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recmodels", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--window-s", type=float, default=30.0)
    parser.add_argument("--policy-cases", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/tuner_cost.json")
    args = parser.parse_args(argv)
    report: dict[str, Any] = run_header()
    report["policy"] = policy_cost(args.policy_cases, 40)
    print(json.dumps(report["policy"]), file=sys.stderr)
    report["observation"] = observation_cost(args.recmodels, args.decisions, args.window_s)
    report["load_average_after"] = load_average()
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
