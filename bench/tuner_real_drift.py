"""Drift on the real loop (issue 15): local mode on one RMC1 pod through a load step and an SLO
edit, the tuner beside the settled config held static.

The simulator's drift bench (`bench/tuner_drift.py`) on real processes, as far as one shared
2-core machine allows: `recsched-operator local`'s own machinery (`run_local` with the phases of
`local.drift.drift_phases`) runs an RMC1 RecModel at scale 0.01 on one CPU pod of 2 workers (one
per core; the pod pins them) behind the router, with a real Prometheus and constant-rate load of
production sizes. Per run: the start config held for one window, the tuner settling at the base
load, then the change, either the offered load x1.5 or the manifest's p95 target halved by an
edit of the run's manifest while it runs (what `kubectl apply` would do). The static baseline
runs right after each tuned run with the config that run had settled on, tuning mode `off` (the
tuner observes every interval but applies nothing), so both are judged on the same windows.
Figures come from the tuner's decision log (`local.drift.drift_outcome`): decisions and seconds
until a window within target follows the change, violation seconds (windows over target x the
11 s interval) after the change and over the tuned part of the run.

Each tuned run and its static baseline take the bench lock (`/tmp/recsched-bench.lock`, as
`flock` does) together, so other measurements can interleave between pairs. About 4 minutes per
tuned run and 3 per static one, plus set-up; results are written after every run.

    .venv/bin/python bench/tuner_real_drift.py [--rounds 3] [--kinds "load step,SLO edit"]

Writes docs/benchmarks/tuner_real_drift.json and .md (generated; no hand-written text).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import logging
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import git_commit, load_average, run_header
from tuner_real_drift_report import render

import recsched_operator
from recsched_operator.local.drift import (
    DRIFT_KINDS,
    LOAD_STEP,
    SLO_EDIT,
    Window,
    drift_outcome,
    drift_phases,
    first_window_s,
    windows_from_decisions,
)
from recsched_operator.local.runner import read_decisions
from recsched_operator.local.session import LocalRunOptions, run_local

ROOT = Path(__file__).resolve().parents[1]
OUT_MD = ROOT / "docs/benchmarks/tuner_real_drift.md"
OUT_JSON = ROOT / "docs/benchmarks/tuner_real_drift.json"
LOCK = Path("/tmp/recsched-bench.lock")
WINDOW_S = 10
INTERVAL_S = 11  # one decision per fresh 10 s window, 1 s spare against timer jitter
WORKERS = 2
SIZES = "production"
logger = logging.getLogger("tuner_real_drift")


def manifest_text(mode: str, target_ms: float, batch: int, args: argparse.Namespace) -> str:
    """The RecModel: RMC1 scale 0.01, one CPU pod, no GPU pool, tuning every 11 s."""
    return f"""apiVersion: recsched.io/v1alpha1
kind: RecModel
metadata: {{name: rmc1-drift, namespace: default}}
spec:
  model: {{name: rmc1, scale: 0.01, image: recsched-pod:local}}
  slo: {{percentile: 95, targetMs: {target_ms:g}, windowSeconds: {WINDOW_S}, minSamples: 100}}
  pools:
    cpu: {{replicas: 1, workers: {WORKERS}}}
    gpu: {{replicas: 0}}
  router: {{replicas: 1}}
  tuning:
    mode: "{mode}"
    intervalSeconds: {INTERVAL_S}
    cooldownSeconds: 0
    batchSize: {{min: {args.batch_min}, max: 1024, initial: {batch}}}
"""


@contextlib.contextmanager
def bench_lock() -> Iterator[float]:
    """The shared bench lock (what `flock /tmp/recsched-bench.lock` takes); yields
    the seconds spent waiting for it."""
    asked = time.monotonic()
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield time.monotonic() - asked
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_once(
    kind: str, policy: str, batch: int, round_index: int, args: argparse.Namespace, scratch: Path
) -> dict[str, Any]:
    """One local run: tuned (`auto`) or the static baseline (`off`), and its figures."""
    target_before = args.target_ms
    target_after = target_before / 2 if kind == SLO_EDIT else target_before
    settle_s = args.settle_s if policy == "tuner" else args.static_settle_s
    phases = drift_phases(
        kind, qps=args.qps, sizes=SIZES, window_s=WINDOW_S, settle_s=settle_s,
        after_s=args.after_s, step_factor=args.step_factor, edited_target_ms=target_after,
    )  # fmt: skip
    name = f"{kind.replace(' ', '-').lower()}-{policy}-{round_index}"
    run_dir = scratch / name
    run_dir.mkdir(parents=True)
    manifest = run_dir / "recmodel.yaml"
    mode = "auto" if policy == "tuner" else "off"
    manifest.write_text(manifest_text(mode, target_before, batch, args), encoding="utf-8")
    load_before = load_average()
    started = time.time()
    run_local(
        LocalRunOptions(
            manifest=manifest, run_dir=run_dir / "run", phases=phases,
            report_dir=run_dir / "report", load_arrivals="constant",
        )
    )  # fmt: skip
    wall_s = time.time() - started
    load_after = load_average()
    decisions = read_decisions(run_dir / "run" / "decisions.jsonl")
    windows = windows_from_decisions(decisions)
    summary = json.loads((run_dir / "report" / "summary.json").read_text(encoding="utf-8"))
    record: dict[str, Any] = {
        "kind": kind,
        "policy": policy,
        "round": round_index,
        "start_batch": batch,
        "target_before_ms": target_before,
        "target_after_ms": target_after,
        "qps_before": args.qps,
        "qps_after": args.qps * (args.step_factor if kind == LOAD_STEP else 1.0),
        "settle_s": settle_s,
        "after_s": args.after_s,
        "wall_s": round(wall_s, 1),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "started": f"{dt.datetime.fromtimestamp(started, dt.UTC):%Y-%m-%d %H:%M:%S} UTC",
        "interrupted": bool(summary.get("interrupted")),
        "phase_p95_ms": {p["name"]: p["phaseP95Ms"] for p in summary["phases"]},
        "decisions": len(decisions),
        "changes": sum(1 for d in decisions if d.get("changed")),
        "windows": [asdict(w) for w in windows],
    }
    if windows:
        record["change_s"] = first_window_s(windows) + settle_s
        record["outcome"] = outcome_of(record)
    return record


def outcome_of(record: dict[str, Any]) -> dict[str, Any]:
    """The run's figures from its recorded windows (also how `--render-only` recomputes them)."""
    windows = [
        Window(w["at_s"], w["p95_ms"], w["qps"], (w["config"][0], w["config"][1]), w["converged"])
        for w in record["windows"]
    ]
    outcome = drift_outcome(
        windows, change_s=record["change_s"], target_before_ms=record["target_before_ms"],
        target_after_ms=record["target_after_ms"], window_s=WINDOW_S, interval_s=INTERVAL_S,
    )  # fmt: skip
    return asdict(outcome)


def _interrupt_on_sigterm() -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def code_commit() -> str:
    """The commit of the code this run imported: the checkout's own (with ' + changes' when its
    sources differ from it), or the COMMIT file of an exported tree put first on PYTHONPATH
    (`git archive HEAD ... | tar -x`), which measures one commit while the checkout moves on."""
    package = Path(recsched_operator.__file__).resolve()
    if package.is_relative_to(ROOT):
        return git_commit(["operator/src", "inference_pod/src", "loadtest/src"])
    for parent in package.parents:
        if (parent / "COMMIT").exists():
            commit = (parent / "COMMIT").read_text(encoding="utf-8").strip()
            return f"{commit} (exported to {parent})"
    return f"unknown ({package.parent})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(DRIFT_KINDS))
    parser.add_argument("--qps", type=float, default=22.0, help="base offered load")
    parser.add_argument("--step-factor", type=float, default=1.5)
    parser.add_argument("--target-ms", type=float, default=50.0, help="p95 target before")
    parser.add_argument("--start-batch", type=int, default=256, help="tuned runs start here")
    parser.add_argument("--batch-min", type=int, default=16)
    parser.add_argument("--settle-s", type=float, default=99.0, help="tuner on, before change")
    parser.add_argument("--static-settle-s", type=float, default=22.0)
    parser.add_argument("--after-s", type=float, default=121.0, help="after the change")
    parser.add_argument("--no-static", action="store_true", help="tuned runs only")
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the runs already in --out-json and add these, rounds numbered on",
    )
    parser.add_argument("--out-md", type=Path, default=OUT_MD)
    parser.add_argument("--out-json", type=Path, default=OUT_JSON)
    parser.add_argument(
        "--render-only", action="store_true",
        help="recompute the figures from --out-json's windows and rewrite --out-md; run nothing",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.render_only:
        document = json.loads(args.out_json.read_text(encoding="utf-8"))
        for run in document["runs"]:
            if "change_s" in run:
                run["outcome"] = outcome_of(run)
        args.out_json.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        args.out_md.write_text(render(document), encoding="utf-8")
        return 0
    kinds = [k.strip() for k in args.kinds.split(",")]
    unknown = [k for k in kinds if k not in DRIFT_KINDS]
    if unknown:
        parser.error(f"unknown kinds {unknown}; known: {', '.join(DRIFT_KINDS)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _interrupt_on_sigterm()
    meta = {
        **run_header(argv),
        "code_commit": code_commit(),
        "model": "rmc1 scale 0.01",
        "pod": f"1 CPU pod x {WORKERS} workers (pinned), router, no GPU pool",
        "sizes": SIZES,
        "arrivals": "constant",
        "window_s": WINDOW_S,
        "interval_s": INTERVAL_S,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out_md", "out_json")},
    }
    runs: list[dict[str, Any]] = []
    if args.append and args.out_json.exists():
        previous = json.loads(args.out_json.read_text(encoding="utf-8"))
        runs = previous["runs"]
        earlier = previous["meta"].pop("earlier", [])
        meta["earlier"] = [*earlier, previous["meta"]]
    first_round = max((r["round"] for r in runs), default=0) + 1
    with tempfile.TemporaryDirectory(prefix="tuner-real-drift-") as tmp:
        try:
            for round_index in range(first_round, first_round + args.rounds):
                for kind in kinds:
                    # One lock for the pair: the static run follows its tuned run directly.
                    with bench_lock() as waited_s:
                        pair_runs(kind, round_index, args, Path(tmp), runs, meta, waited_s)
        except KeyboardInterrupt:
            logger.warning("interrupted: %d runs recorded", len(runs))
    _write(args, meta, runs)
    return 0


def pair_runs(
    kind: str,
    round_index: int,
    args: argparse.Namespace,
    scratch: Path,
    runs: list[dict[str, Any]],
    meta: dict[str, Any],
    waited_s: float,
) -> None:
    """The tuned run, then the static one at the config it settled on; each recorded as it
    ends. KeyboardInterrupt when a run was cut short (Ctrl-C, SIGTERM)."""
    tuned = run_once(kind, "tuner", args.start_batch, round_index, args, scratch)
    tuned["lock_wait_s"] = round(waited_s, 1)
    runs.append(tuned)
    _write(args, meta, runs)
    if tuned["interrupted"]:
        raise KeyboardInterrupt
    settled = (tuned.get("outcome") or {}).get("config_before")
    if args.no_static or settled is None:
        return
    static = run_once(kind, "static", settled[0], round_index, args, scratch)
    runs.append(static)
    _write(args, meta, runs)
    if static["interrupted"]:
        raise KeyboardInterrupt


def _write(args: argparse.Namespace, meta: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    meta = {
        **meta,
        "finished": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}",
        "load_average_after": load_average(),
    }
    document = {"meta": meta, "runs": runs}
    args.out_json.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    args.out_md.write_text(render(document), encoding="utf-8")
    logger.info("wrote %s and %s (%d runs)", args.out_md, args.out_json, len(runs))


if __name__ == "__main__":
    raise SystemExit(main())
