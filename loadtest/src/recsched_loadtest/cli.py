"""`recsched-loadtest`: run | capacity | sweep against an OIP v2 endpoint.

Exit codes: `run` 0 when p95 <= --slo-ms with errors under --max-error-ratio (or no SLO given), 1
when not; `capacity` 0 when the search converged on a capacity > 0, else 1; `sweep` 0 when every
config converged, else 1; 2 for usage, spec or endpoint errors. `--json` prints one JSON document
on stdout; progress and tables go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from recsched_loadtest.arrivals import (
    constant_rate,
    parse_rate_profile,
    parse_trace,
    trace_schedule_s,
)
from recsched_loadtest.capacity import TrialSettings, measure_capacity_repeated, run_workload
from recsched_loadtest.capacity_search import CapacityPolicy, repeat_seed, summarize_repeats
from recsched_loadtest.console import (
    CapacityReporter,
    LiveProgress,
    print_capacity_curve,
    print_repeat_summary,
    print_run_summary,
)
from recsched_loadtest.driver import DriveOptions
from recsched_loadtest.errors import LoadtestError, SpecError
from recsched_loadtest.indices import parse_index_spec
from recsched_loadtest.oip_client import fetch_signature, wait_until_ready
from recsched_loadtest.plots import write_sweep_plots
from recsched_loadtest.report_files import repeated_capacity_json, write_sweep_files
from recsched_loadtest.settings import LoadtestSettings
from recsched_loadtest.signature import ModelSignature
from recsched_loadtest.sizes import parse_size_spec
from recsched_loadtest.sweep import run_sweep
from recsched_loadtest.sweep_plan import SweepConfig, batch_size_configs, parse_sweep_configs
from recsched_loadtest.transports import CLIENT_KINDS, InferTransport, make_transport
from recsched_loadtest.workload import WorkloadSpec


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise SpecError(f"cannot read {what} {path!r}: {exc.strerror}") from exc


def _common_parser(settings: LoadtestSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("endpoint and workload")
    group.add_argument("--url", default=settings.url, help="endpoint base URL (%(default)s)")
    group.add_argument("--model", required=True, help="model name, e.g. rmc1")
    group.add_argument(
        "--sizes",
        default="production",
        help="query sizes: production (default; lognormal mu=5.1 sigma=0.8, clipped 1..1024), "
        "paper (lognormal 5.1,0.2), fixed:N, normal:MEAN,STD, lognormal:MU,SIGMA, file:PATH",
    )
    group.add_argument("--indices", default="uniform", help="uniform | zipf[:EXPONENT]")
    group.add_argument("--protocol", choices=("binary", "json"), default="binary")
    group.add_argument("--arrivals", choices=("poisson", "constant"), default="poisson")
    group.add_argument("--seed", type=int, default=1)
    group.add_argument(
        "--client",
        choices=CLIENT_KINDS,
        default="aiohttp",
        help="HTTP client (httpx tops out near 100 QPS here; see docs/benchmarks/loadtest.md)",
    )
    group.add_argument("--max-in-flight", type=int, default=1024, help="client cap on open queries")
    group.add_argument("--timeout-s", type=float, default=10.0, help="per-query deadline")
    group.add_argument("--pool-items", type=int, default=8192, help="tensor rows per run")
    group.add_argument("--ready-timeout-s", type=float, default=30.0)
    group.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    group.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def _capacity_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("capacity search")
    group.add_argument("--target-ms", type=float, required=True, help="p95 latency target")
    group.add_argument("--start-qps", type=float, default=10.0)
    group.add_argument(
        "--trial-s", type=float, default=10.0, help="measured seconds per trial, at least"
    )
    group.add_argument(
        "--min-trial-queries",
        type=int,
        default=100,
        help="expected queries per trial, at least: low rates get longer trials (%(default)s)",
    )
    group.add_argument("--warmup-s", type=float, default=2.0, help="discarded seconds per trial")
    group.add_argument("--tolerance", type=float, default=0.05, help="stop when (hi-lo)/lo <= it")
    group.add_argument("--growth", type=float, default=2.0, help="bracketing factor")
    group.add_argument("--min-trials", type=int, default=1)
    group.add_argument("--max-trials", type=int, default=3, help="trials per rate when unstable")
    group.add_argument(
        "--confirm-failures",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a failing trial is repeated before its rate counts as failed (default: on)",
    )
    group.add_argument("--max-error-ratio", type=float, default=0.01)
    group.add_argument("--max-qps", type=float, default=1_000_000.0)
    group.add_argument("--max-search-s", type=float, default=1800.0)
    group.add_argument(
        "--fresh-trials",
        action="store_true",
        help="draw new arrivals and sizes for every trial (default: every trial replays the "
        "same query sequence at its own rate, so trials differ only in rate)",
    )


def build_parser(settings: LoadtestSettings | None = None) -> argparse.ArgumentParser:
    settings = settings or LoadtestSettings()
    common = _common_parser(settings)
    parser = argparse.ArgumentParser(
        prog="recsched-loadtest", description="Open-loop DeepRecInfra load generator for OIP v2."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", parents=[common], help="one fixed workload")
    load = run.add_mutually_exclusive_group(required=True)
    load.add_argument("--rate", type=float, help="constant offered QPS (with --duration-s)")
    load.add_argument(
        "--profile", help="RATE:SECONDS segments, A-B:SECONDS ramps, e.g. 50:10,100:10"
    )
    load.add_argument("--trace", help="file of arrival times in seconds, one per line")
    run.add_argument("--duration-s", type=float, default=30.0)
    run.add_argument("--trace-speedup", type=float, default=1.0)
    run.add_argument("--warmup-s", type=float, default=5.0, help="discarded from the statistics")
    run.add_argument("--slo-ms", type=float, help="exit 1 unless p95 <= this (and errors bounded)")
    run.add_argument("--max-error-ratio", type=float, default=0.01)

    capacity = commands.add_parser("capacity", parents=[common], help="latency-bounded QPS")
    _capacity_arguments(capacity)
    capacity.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the whole search K times on the same workload; reports median, min, max",
    )
    capacity.add_argument(
        "--vary-seed",
        action="store_true",
        help="with --repeat: search r uses seed SEED+r, so the spread includes workload sampling",
    )

    sweep = commands.add_parser("sweep", parents=[common], help="capacity for each config")
    _capacity_arguments(sweep)
    configs = sweep.add_mutually_exclusive_group(required=True)
    configs.add_argument("--configs", help="JSON list of config-document knobs")
    configs.add_argument("--batch-sizes", help="shorthand: comma-separated batchSize values")
    sweep.add_argument("--out", required=True, help="output directory")
    sweep.add_argument("--token", help="admin bearer token (or RECSCHED_LOADTEST_ADMIN_TOKEN)")
    sweep.add_argument("--token-file", help="file holding the admin bearer token")
    sweep.add_argument("--settle-s", type=float, default=1.0, help="pause after each push")
    return parser


def workload_spec(args: argparse.Namespace) -> WorkloadSpec:
    sizes_text = args.sizes
    file_text = _read(sizes_text[5:], "size file") if sizes_text.startswith("file:") else None
    spec = WorkloadSpec(
        arrivals=args.arrivals,
        sizes=parse_size_spec(sizes_text, file_text),
        indices=parse_index_spec(args.indices),
        protocol=args.protocol,
        seed=args.seed,
        pool_items=args.pool_items,
    )
    if args.command != "run":
        return spec
    if args.trace:
        times = parse_trace(_read(args.trace, "trace"), args.trace)
        offsets = trace_schedule_s(times, args.trace_speedup)
        return replace(spec, arrivals="trace", trace_s=tuple(offsets.tolist()))
    if args.profile:
        return replace(spec, profile=parse_rate_profile(args.profile))
    return replace(spec, profile=constant_rate(args.rate, args.duration_s))


def drive_options(args: argparse.Namespace) -> DriveOptions:
    if args.max_in_flight < 1 or args.timeout_s <= 0:
        raise SpecError("--max-in-flight must be >= 1 and --timeout-s > 0")
    return DriveOptions(
        warmup_s=getattr(args, "warmup_s", 0.0),
        max_in_flight=args.max_in_flight,
        request_timeout_s=args.timeout_s,
        drain_timeout_s=args.timeout_s + 1.0,
    )


def capacity_setup(args: argparse.Namespace) -> tuple[CapacityPolicy, TrialSettings]:
    policy = CapacityPolicy(
        target_ms=args.target_ms,
        start_qps=args.start_qps,
        max_error_ratio=args.max_error_ratio,
        tolerance=args.tolerance,
        growth=args.growth,
        max_qps=args.max_qps,
        min_trials=args.min_trials,
        max_trials=args.max_trials,
        confirm_failures=args.confirm_failures,
    )
    if args.min_trial_queries < 1:
        raise SpecError("--min-trial-queries must be >= 1")
    settings = TrialSettings(
        trial_s=args.trial_s,
        min_trial_queries=args.min_trial_queries,
        warmup_s=args.warmup_s,
        max_search_s=args.max_search_s,
        common_workload=not args.fresh_trials,
        drive=drive_options(args),
    )
    return policy, settings


@contextlib.asynccontextmanager
async def _session(
    args: argparse.Namespace, console: Console
) -> AsyncIterator[tuple[ModelSignature, InferTransport, LiveProgress]]:
    """The model's signature, a transport to it and the live progress display, for one command;
    the display closes before the transport."""
    await wait_until_ready(args.url, args.ready_timeout_s)
    signature = await fetch_signature(args.url, args.model)
    transport = make_transport(args.client, args.url, args.model, args.max_in_flight)
    try:
        with LiveProgress(console, enabled=not args.quiet) as progress:
            yield signature, transport, progress
    finally:
        await transport.aclose()


def _emit(console: Console, args: argparse.Namespace, document: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(document, indent=2, allow_nan=False))


async def command_run(args: argparse.Namespace, console: Console) -> int:
    spec = workload_spec(args)
    async with _session(args, console) as (signature, transport, progress):
        summary = await run_workload(
            transport,
            signature,
            spec,
            drive_options(args),
            monitor=progress.watch,
            on_built=lambda queries: progress.begin(f"{args.model}", queries),
        )
    met = None if args.slo_ms is None else summary.meets_slo(args.slo_ms, args.max_error_ratio)
    if not args.quiet:
        print_run_summary(console, summary, f"{args.model}: {spec.describe()}")
        if met is not None:
            console.print(f"SLO p95 <= {args.slo_ms:g} ms: {'met' if met else 'NOT met'}")
    document = {"model": args.model, "workload": spec.describe(), **summary.to_json_dict()}
    _emit(console, args, {**document, "slo_ms": args.slo_ms, "slo_met": met})
    return 0 if met is None or met else 1


async def command_capacity(args: argparse.Namespace, console: Console) -> int:
    spec = workload_spec(args)
    policy, settings = capacity_setup(args)
    if args.repeat < 1:
        raise SpecError("--repeat must be >= 1")
    async with _session(args, console) as (signature, transport, progress):
        results = await measure_capacity_repeated(
            transport,
            signature,
            spec,
            policy,
            settings,
            args.repeat,
            lambda repeat: CapacityReporter(
                progress, f"search {repeat + 1}/{args.repeat}" if args.repeat > 1 else ""
            ),
            vary_seed=args.vary_seed,
        )
    summary = summarize_repeats([result.capacity_qps for result in results])
    if not args.quiet:
        for repeat, result in enumerate(results):
            seed = repeat_seed(spec.seed, repeat, args.vary_seed)
            title = f"{args.model}: {replace(spec, seed=seed).describe()}"
            print_capacity_curve(console, result, policy.target_ms, title)
        if args.repeat > 1:
            print_repeat_summary(console, summary, policy.target_ms)
    document = {
        "model": args.model,
        "workload": spec.describe(),
        "target_ms": policy.target_ms,
        "trials": "common workload" if settings.common_workload else "fresh workload per trial",
        "search_seeds": [repeat_seed(spec.seed, r, args.vary_seed) for r in range(args.repeat)],
    }
    _emit(console, args, {**document, **repeated_capacity_json(results, summary)})
    converged = all(result.converged for result in results)
    return 0 if converged and summary.median_qps > 0 else 1


def _sweep_token(args: argparse.Namespace, settings: LoadtestSettings) -> str | None:
    if args.token:
        return str(args.token)
    if args.token_file:
        return _read(args.token_file, "token file").strip()
    return settings.admin_token.get_secret_value() if settings.admin_token else None


async def command_sweep(
    args: argparse.Namespace, console: Console, settings: LoadtestSettings
) -> int:
    spec = workload_spec(args)
    policy, trial_settings = capacity_setup(args)
    configs: list[SweepConfig] = (
        parse_sweep_configs(_read(args.configs, "config list"), args.configs)
        if args.configs
        else batch_size_configs(args.batch_sizes)
    )
    async with _session(args, console) as (signature, transport, progress):
        points = await run_sweep(
            args.url,
            _sweep_token(args, settings),
            transport,
            signature,
            spec,
            policy,
            trial_settings,
            configs,
            settle_s=args.settle_s,
            reporter_for=lambda config: CapacityReporter(progress, config.label),
        )
    out_dir = Path(args.out)
    meta = {"model": args.model, "workload": spec.describe(), "target_ms": policy.target_ms}
    files = write_sweep_files(out_dir, points, meta)
    files += write_sweep_plots(points, policy.target_ms, out_dir)
    if not args.quiet:
        for point in points:
            print_capacity_curve(console, point.result, policy.target_ms, point.config.label)
        console.print("wrote " + ", ".join(str(path) for path in files))
    if args.json:
        print((out_dir / "sweep.json").read_text(), end="")
    return 0 if all(point.result.converged for point in points) else 1


def _run_async(coroutine: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop  # a faster event loop lets one process offer more load

        return uvloop.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    settings = LoadtestSettings()
    args = build_parser(settings).parse_args(argv)
    console = Console(stderr=True)
    try:
        if args.command == "run":
            return _run_async(command_run(args, console))
        if args.command == "capacity":
            return _run_async(command_capacity(args, console))
        return _run_async(command_sweep(args, console, settings))
    except LoadtestError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
