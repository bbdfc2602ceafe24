"""`recsched-operator simulate`: the tuner against the queueing simulator, from a worst corner.

    recsched-operator simulate --model wnd --slo-ms 80 --seed 1 --json
    python -m recsched_operator.simulate_cli --model rmc1 --slo-ms 20 --qps 2500

Runs the real policy (`tuning.decide_next_config`) on a simulated cluster fed with the model's
measured service-time profile, at a fixed offered load (default: 75% of the grid optimum's
capacity), and prints every decision with its reason, the final config and its capacity, the grid
optimum and its capacity, and how many decisions it took. `add_parser` and `run` plug into the
operator's CLI; this module's own `main` serves `python -m`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recsched_operator.tuner import (
    KnobConfig,
    SloTarget,
    TuningBounds,
    TuningMode,
    TuningSettings,
)
from recsched_operator.tuner.simulation.capacity import CapacityModel, Scenario
from recsched_operator.tuner.simulation.engine import ClusterShape
from recsched_operator.tuner.simulation.profiles import ProfileError, load_profile, profile_names
from recsched_operator.tuner.simulation.tuning_run import (
    SimulatedService,
    evaluate_run,
    run_tuner,
    worst_corner,
)
from recsched_operator.tuner.simulation.workload import SIZE_DISTRIBUTIONS


def _config(text: str) -> KnobConfig:
    try:
        batch, threshold = (int(part) for part in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected BATCH,THRESHOLD, got {text!r}") from exc
    return KnobConfig(batch, threshold)


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the simulate options to `parser`."""
    parser.add_argument(
        "--model", required=True, help=f"profiled model: {', '.join(profile_names())}"
    )
    parser.add_argument("--slo-ms", type=float, required=True, help="latency target in ms")
    parser.add_argument("--percentile", type=int, choices=(95, 99), default=95)
    parser.add_argument("--seed", type=int, default=0, help="seed of arrivals, sizes and noise")
    parser.add_argument(
        "--qps", type=float, help="offered load (default: --load-fraction of the optimum)"
    )
    parser.add_argument(
        "--load-fraction",
        type=float,
        default=0.75,
        help="offered load as a fraction of the grid optimum's capacity",
    )
    parser.add_argument("--decisions", type=int, default=30, help="tuner intervals to simulate")
    parser.add_argument(
        "--start",
        type=_config,
        help="BATCH,THRESHOLD to start from (default: the grid corner of lowest capacity)",
    )
    parser.add_argument("--mode", choices=[m.value for m in TuningMode], default="auto")
    parser.add_argument(
        "--sizes",
        choices=sorted(SIZE_DISTRIBUTIONS),
        default="heavy",
        help="query-size distribution",
    )
    parser.add_argument("--cpu-pods", type=int, default=2)
    parser.add_argument("--cpu-workers", type=int, default=8, help="workers per CPU pod")
    parser.add_argument("--gpu-pods", type=int, default=1)
    parser.add_argument("--window-s", type=float, default=30.0, help="measurement window")
    parser.add_argument("--cooldown-s", type=float, default=10.0)
    parser.add_argument(
        "--latency-noise",
        type=float,
        default=0.10,
        help="sigma of the lognormal noise on observed latencies",
    )
    parser.add_argument(
        "--utilization-noise",
        type=float,
        default=0.02,
        help="sigma of the lognormal noise on observed utilisations",
    )
    parser.add_argument("--profile", type=Path, help="profile JSON instead of the shipped one")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    return parser


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `simulate` on the operator CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run the tuner against the queueing simulator",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    return configure_parser(parser)


def simulate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the simulation the arguments describe; the result as a JSON-ready dict."""
    profile = load_profile(args.model, args.profile)
    cluster = ClusterShape(args.cpu_pods, args.cpu_workers, args.gpu_pods)
    bounds = TuningBounds() if args.gpu_pods > 0 else TuningBounds(threshold_min=1025)
    scenario = Scenario(
        profile, cluster, SIZE_DISTRIBUTIONS[args.sizes], args.percentile, args.slo_ms
    )
    model = CapacityModel.build(scenario, seed=args.seed)
    optimum, optimum_qps = model.optimum(bounds)
    qps = args.qps or args.load_fraction * optimum_qps
    if qps <= 0:
        raise ValueError(f"no grid config meets p{args.percentile} <= {args.slo_ms} ms at any load")
    start = bounds.clamp(args.start) if args.start else worst_corner(model, bounds)
    slo = SloTarget(args.percentile, args.slo_ms, args.window_s)
    settings = TuningSettings(cooldown_s=args.cooldown_s)
    service = SimulatedService(
        scenario, qps, latency_noise=args.latency_noise, utilization_noise=args.utilization_noise
    )
    run = run_tuner(
        service, start, bounds, slo, settings, args.decisions, args.seed, TuningMode(args.mode)
    )
    score = evaluate_run(run, model, bounds, slo)
    return {
        "model": args.model,
        "slo": {"percentile": args.percentile, "targetMs": args.slo_ms, "windowS": args.window_s},
        "cluster": {
            "cpuPods": args.cpu_pods,
            "cpuWorkersPerPod": args.cpu_workers,
            "gpuPods": args.gpu_pods,
        },
        "sizes": args.sizes,
        "qps": round(qps, 2),
        "seed": args.seed,
        "start": start.to_dict(),
        "startCapacityQps": round(model.capacity_qps(start), 2),
        "trace": [step.to_dict() for step in run.steps],
        "final": run.final.to_dict(),
        "finalCapacityQps": round(score.final_qps, 2),
        "optimum": optimum.to_dict(),
        "optimumCapacityQps": round(optimum_qps, 2),
        "capacityRatio": round(score.final_ratio, 4),
        "decisions": len(run.steps),
        "decisionsToReach95": score.reached_at,
        "decisionsToConverge": score.converged_at,
        "configsTried": score.configs_tried,
        "longestViolationAfterConverging": score.longest_violation_after_converging,
    }


def _print_text(result: dict[str, Any]) -> None:
    for step in result["trace"]:
        print(f"{step['decision']:3d} {step['action']:9s} {step['reason']}")
    final, optimum = result["final"], result["optimum"]
    print(
        f"final batch {final['batchSize']}, threshold {final['offloadThreshold']}: "
        f"{result['finalCapacityQps']:.0f} qps capacity "
        f"({result['capacityRatio']:.0%} of the grid optimum batch {optimum['batchSize']}, "
        f"threshold {optimum['offloadThreshold']}: {result['optimumCapacityQps']:.0f} qps); "
        f"{result['decisions']} decisions, within 95% after {result['decisionsToReach95']}, "
        f"converged after {result['decisionsToConverge']}"
    )


def run(args: argparse.Namespace) -> int:
    """Entry point for the operator CLI: 0 on success, 2 on bad input."""
    try:
        result = simulate(args)
    except (ProfileError, ValueError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        _print_text(result)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = configure_parser(argparse.ArgumentParser(prog="recsched-operator simulate"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
