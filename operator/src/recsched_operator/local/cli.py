"""`recsched-operator local`: the command-line face of local mode."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from recsched_operator.local.drift import LOAD_STEP, SLO_EDIT, drift_phases
from recsched_operator.local.processes import LocalRunError
from recsched_operator.local.scenario import DemoLoad, Phase, demo_phases
from recsched_operator.local.session import LocalRunOptions, load_manifest, run_local


def add_parser(subparsers: Any) -> None:
    local: argparse.ArgumentParser = subparsers.add_parser(
        "local",
        help="run a RecModel on this machine: pods, router, Prometheus and the tuner",
        description="Local mode: starts the RecModel's pods and router as local processes, a real "
        "Prometheus scraping them, and the tuner; optionally drives load and writes a report.",
    )
    local.add_argument("file", type=Path, help="YAML file holding one RecModel")
    local.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="working folder (default .recsched/<name>); replaced unless --resume",
    )
    local.add_argument(
        "--duration-s",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    local.add_argument(
        "--load-qps",
        type=float,
        default=None,
        help="also run recsched-loadtest at this offered rate for the whole run",
    )
    local.add_argument(
        "--load-sizes",
        default="production",
        help="query sizes for the load (recsched-loadtest --sizes)",
    )
    local.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help="where report.md and tuning.png go (default <run-dir>/report)",
    )
    local.add_argument(
        "--gpu-profile",
        default=None,
        help="GPU latency profile for emulated GPU pods: a file from bench/gpu_profile.py or a "
        "shipped name such as nvidia-h200 (default: this host's CPU times / the paper's speedups)",
    )
    scenario = local.add_argument_group(
        "scripted scenario (--scenario demo: what make demo runs)",
        "Phases: the starting config measured for one SLO window, then steady load with the "
        "tuner on, a load step, a shift to large queries, and an SLO edit in the manifest. "
        "--duration-s is the whole scenario; --load-qps the steady load. load-step and slo-edit "
        "are one change each (bench/tuner_real_drift.py): the start config held for one window, "
        "the tuner settling at --load-qps for --settle-s, then the load x --step-factor, or the "
        "target rewritten to --edit-target-ms (default: half the manifest's), for the rest.",
    )
    scenario.add_argument("--scenario", choices=SCENARIOS, default=None)
    scenario.add_argument(
        "--settle-s",
        type=float,
        default=None,
        help="load-step, slo-edit: seconds of tuning before the change (default: half the time "
        "after the held window)",
    )
    scenario.add_argument("--step-factor", type=float, default=1.5, help="load step (x QPS)")
    scenario.add_argument(
        "--large-sizes", default="lognormal:5.8,0.6", help="size mix of the large-query phase"
    )
    scenario.add_argument(
        "--large-qps-factor",
        type=float,
        default=0.6,
        help="QPS of the large-query phase, as a multiple of the stepped load (0.6: about as many "
        "items per second as the load step with the default mixes)",
    )
    scenario.add_argument(
        "--edit-target-ms",
        type=float,
        default=None,
        help="the SLO target the last phase writes into the manifest (demo: none, no SLO-edit "
        "phase; slo-edit: half the manifest's target)",
    )
    scenario.add_argument(
        "--load-arrivals",
        choices=("constant", "poisson"),
        default="constant",
        help="arrival process of the scenario's load (constant: the tuner compares windows at "
        "equal load; Poisson's +-10%% per 10 s window at ~10 QPS voids its comparisons)",
    )
    local.add_argument(
        "--resume",
        action="store_true",
        help="continue the search saved in --run-dir instead of starting afresh",
    )


SCENARIOS = ("demo", "load-step", "slo-edit")


def scenario_phases(
    args: argparse.Namespace, window_s: float, target_ms: float
) -> tuple[Phase, ...]:
    """The phases of `--scenario` (ValueError when the duration cannot hold them)."""
    if args.scenario == "demo":
        return demo_phases(
            args.duration_s,
            window_s,
            DemoLoad(
                qps=args.load_qps,
                sizes=args.load_sizes,
                step_factor=args.step_factor,
                large_sizes=args.large_sizes,
                large_qps_factor=args.large_qps_factor,
                edited_target_ms=args.edit_target_ms,
            ),
        )
    held_s = window_s + 4.0  # drift_phases' held window
    tuned_s = args.duration_s - held_s
    settle_s = args.settle_s if args.settle_s is not None else round(tuned_s / 2, 1)
    after_s = tuned_s - settle_s
    if min(settle_s, after_s) < window_s:
        raise ValueError(
            f"{args.duration_s:g} s is too short: after {held_s:g} s at the start config, the "
            f"settling ({settle_s:g} s) and the change ({after_s:g} s) each need one SLO window "
            f"({window_s:g} s)"
        )
    kind = LOAD_STEP if args.scenario == "load-step" else SLO_EDIT
    edited_ms = args.edit_target_ms if args.edit_target_ms is not None else target_ms / 2
    return drift_phases(
        kind,
        qps=args.load_qps,
        sizes=args.load_sizes,
        window_s=window_s,
        settle_s=settle_s,
        after_s=after_s,
        step_factor=args.step_factor,
        edited_target_ms=edited_ms if kind == SLO_EDIT else None,
    )


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a `timeout`, a CI runner) ends the run like Ctrl-C: processes stopped, report
    written."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run(args: argparse.Namespace) -> int:
    _interrupt_on_sigterm()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per push is noise here
    run_dir = args.run_dir
    if run_dir is None:
        try:
            owner, _ = load_manifest(args.file)
        except LocalRunError as error:
            print(f"recsched-operator local: {error}", file=sys.stderr)
            return 2
        run_dir = Path(".recsched") / owner.name
    phases: tuple[Phase, ...] = ()
    if args.scenario is not None:
        if args.load_qps is None or args.duration_s is None:
            print(
                "recsched-operator local: --scenario needs --load-qps and --duration-s",
                file=sys.stderr,
            )
            return 2
        try:
            _, spec = load_manifest(args.file)
            phases = scenario_phases(args, float(spec.slo.window_s), spec.slo.target_ms)
        except (LocalRunError, ValueError) as error:
            print(f"recsched-operator local: {error}", file=sys.stderr)
            return 2
    options = LocalRunOptions(
        manifest=args.file,
        run_dir=run_dir,
        duration_s=args.duration_s,
        load_qps=args.load_qps,
        load_sizes=args.load_sizes,
        report_dir=args.report_dir,
        resume=args.resume,
        gpu_profile=args.gpu_profile,
        phases=phases,
        load_arrivals=args.load_arrivals,
    )
    try:
        report = run_local(options)
    except LocalRunError as error:
        print(f"recsched-operator local: {error}", file=sys.stderr)
        return 1
    if report is not None:
        print(f"report: {report}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="recsched-operator")
    add_parser(parser.add_subparsers(dest="command", required=True))
    sys.exit(run(parser.parse_args()))
