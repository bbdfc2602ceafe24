"""`recsched-operator local`: the command-line face of local mode."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from recsched_operator.local.processes import LocalRunError
from recsched_operator.local.session import LocalRunOptions, run_local


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
        "--resume",
        action="store_true",
        help="continue the search saved in --run-dir instead of starting afresh",
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per push is noise here
    run_dir = args.run_dir
    if run_dir is None:
        from recsched_operator.local.session import load_manifest

        try:
            owner, _ = load_manifest(args.file)
        except LocalRunError as error:
            print(f"recsched-operator local: {error}", file=sys.stderr)
            return 2
        run_dir = Path(".recsched") / owner.name
    options = LocalRunOptions(
        manifest=args.file,
        run_dir=run_dir,
        duration_s=args.duration_s,
        load_qps=args.load_qps,
        load_sizes=args.load_sizes,
        report_dir=args.report_dir,
        resume=args.resume,
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
