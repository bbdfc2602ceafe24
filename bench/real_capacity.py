"""The simulator's capacity columns (b) and (c) checked on a real pod (issue 13, section 2).

For RMC1 and WnD at scale 0.01: one pod of 2 workers (pinned, as the pod pins 2 workers on 2
CPUs), the headline's heavy-tailed size mix (`HEAVY_TAILED`, written to a size file for the load
generator), binary protocol, one p95 target per model. The machine is shared and its speed
drifts by 2x within minutes, so predictions are calibrated on the same pod in the same minutes
as the searches they predict:

* A calibration: with whole queries (B = 1024) pushed, `recsched-loadtest run` saturates the pod
  with fixed-size queries of 4, 16, 64, 256 and 1024 items (open loop above capacity, at most
  2W + 2 queries open); a worker's service time at n items is W / achieved QPS. That is the CPU
  a request really costs here, the pod's HTTP and decoding and the load generator's own CPU
  included (they share the two cores), which is what a capacity search meets; the pod's compute
  histogram gives the bare forward time beside it, and the shipped profile's time beside that.
  Then each size alone (workers 20% busy): the client's median latency minus the pod's forward
  time is the latency a query spends outside any worker (its body's transfer, decoding and
  encoding, on the event loop and in the client). A line fitted through it (ms per query + ms
  per item, neither below 0) goes to the simulator as `query_overhead_s` and
  `query_overhead_per_item_s`; at 1024 items it is 10-15 ms here, which a constant taken from
  the mix's mean (the previous method, `mix_mean`, still predicted beside it) set to 0-6 ms.
  A light-load run of the mix checks the latency model (mean and p95, measured and simulated).
* A prediction: `CapacityModel` on `ClusterShape(1 pod x 2 workers, no GPU)` with the calibrated
  service times, judged on windows as long as the search's trials: (b) whole queries, B = 1024;
  (c) the grid optimum with offload off (`CPU_ONLY_BOUNDS`; the tuner converges to it within 5%
  in the headline), chosen from the first calibration and kept, so every round measures the same
  two configs. The target is TARGET_MULTIPLE (1.5, the headline's loose target) x the first
  calibration's 1024-item time.
* A round: `recsched-loadtest sweep` pushes (b) and (c) and searches each one's capacity (order
  alternating: b, c then c, b; at least 2 trials per rate, a third when they disagree, the
  median deciding), then the pod is calibrated again. Calibrations C0..Cn bracket rounds 1..n:
  round r is predicted blind from C(r-1) alone, and from the mean of C(r-1) and C(r) (the
  machine's speed on both sides of its searches; the floor is judged on this one).

On a quiet machine (`make reproduce`, 2026-12-03 21:48-22:12 UTC) both models are within 15% on
the median: RMC1 0.88x (b) and 0.93x (c), WnD 1.02x (3 of 3 rounds). Why the earlier runs were
not, the 1.0x run (15:42 UTC) missing RMC1 (0.59x and 0.83x) while WnD (b) read 1.01x, and what
the 1.5x run (18:23-18:56 UTC: RMC1 0.86x and 0.86x, 2/3 rounds each; WnD 0.70x and 0.65x)
missed:

* The target. At 1x the 1024-item service time, the p95 query (~700 items) alone takes 60-80%
  of the target and the 2.5% of queries at 1024 items take all of it, so one wait behind another
  large query decides the verdict: on a long window the predicted capacity moves +31-34% and
  -20-32% for a 10% change in service time (+12-15% and -12% at 1.5x), and the chosen (c)
  config flips between B = 512 and 1024. The headline's claims are made at 0.5x and 1.5x; (b)
  has no capacity at 0.5x, so 1.5x is the check. At 1.5x on 2 workers the grid optimum (c) is
  B = 1024 for both models, so (c) is (b)'s config, and one search per round serves both
  columns (`searched_configs`; it was two searches of one config until the end-to-end run).
* Latency outside the workers grows with the query: 6-17 ms at 1024 items, where the old
  constant, fitted on the mix's mean, was 0 in 6 of 8 calibrations (the mean is set by small
  queries, and the saturated service times overstate their latency). It moved the predictions
  by a few percent only (measured / previous method's prediction: RMC1 0.81 and 0.89).
* The two workers slow each other: the pod's forward time at saturation over its time alone
  is 1.9-2.6x for RMC1 at 1024 items (embedding lookups: memory-bound) and 1.1-1.3x for WnD, so
  two RMC1 workers deliver about one worker's throughput alone. The calibration folds that into
  the service times (right at saturation, pessimistic for a query that runs alone: the
  simulated light-load p95 is 1.1-2.3x the measured one in 7 of 8 calibrations); the
  simulator's workers are independent, so the real p95 climbs faster with load than its own.
* The machine's speed moves within a round: in the 3 rounds whose calibrations before and
  after agree within 5%, measured / predicted is 0.77-0.97 (median 0.875, 4 of 6 searches
  within 15%); in the 3 where the speed moved 15-78%, 0.40-0.86. Other tenants fill every idle
  cycle (load average 3-6), and a trial that lands in a burst of other work fails far from
  the target (p50 up to 10-20x its neighbours' at +3% rate), so a search reads the machine's
  worst minutes while the calibrations read its typical ones. Requiring 2 agreeing trials per
  rate takes out single-trial bursts, not minute-long ones.
* The load generator's own CPU is 0.3-0.4 cores here (about 2 s of it starting up), included
  in the saturated service times since the calibration uses the same generator.

Why the run before it missed WnD by 2x (measured 2.0-2.4x its prediction): it fitted one factor
on the shipped profile at 64-item requests and applied it to B = 512-1024, where the profile's
shape is off for this pod (pod/shipped 1.95 at 64 items, 1.57 at 256-1024), and the machine's
speed moved 0.7-2.25x between calibrations a few minutes apart.

    flock /tmp/recsched-bench.lock .venv/bin/python bench/real_capacity.py --models rmc1
    flock /tmp/recsched-bench.lock .venv/bin/python bench/real_capacity.py --models wnd --append

About 10 minutes per model at 3 rounds when (c) is (b)'s config (one hold of the bench lock
each); the calibration is `real_capacity_calibration.py`. Writes
docs/benchmarks/real_capacity.json and .md. `real_capacity_probe.py` compares simulated and
measured latency percentiles at fixed rates on one calibrated pod.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from harness import (
    Running,
    load_average,
    loadtest_json,
    run_header,
    running_pod,
    write_results,
)
from real_capacity_calibration import CALIBRATION_ITEMS, calibrate, cluster_of, pod_profile, pooled
from real_capacity_report import render

from recsched_operator.tuner import KnobConfig
from recsched_operator.tuner.simulation.capacity import CapacityModel, Scenario, work_bound_qps
from recsched_operator.tuner.simulation.study import CPU_ONLY_BOUNDS
from recsched_operator.tuner.simulation.workload import HEAVY_TAILED

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs/benchmarks/real_capacity.json"
WORKERS = 2  # the default; --workers changes it for one run
TARGET_MULTIPLE = 1.5  # x a worker's calibrated time for a 1024-item request (headline: loose)
WHOLE_QUERIES = KnobConfig(1024, 1025)
TOLERANCE = 0.15
TRIAL_S, TRIAL_WARMUP_S, MIN_TRIAL_QUERIES = 6.0, 1.5, 100
MIN_TRIALS, MAX_TRIALS, MAX_SEARCH_S = 2, 3, 360
SIM_SEEDS = 20  # trial-length windows: the median over 5 moved 20% between neighbouring speeds


def log(message: str) -> None:
    print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {message}", file=sys.stderr, flush=True)


def stop_on_sigterm() -> None:
    """SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the pod and clients are stopped."""

    def handler(_signal: int, _frame: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, handler)


def trial_capacity(scenario: Scenario, config: KnobConfig, guess_qps: float) -> float:
    """Capacity judged on windows as long as the load test's trials (median over seeds): near
    saturation a short window's p95 is lower than a long one's."""
    qps = guess_qps
    for _ in range(2):
        window_s = max(TRIAL_S, MIN_TRIAL_QUERIES / max(qps, 1e-3)) + TRIAL_WARMUP_S
        queries = max(200, round(qps * window_s))
        qps = statistics.median(
            CapacityModel.build(scenario, queries, seed).capacity_qps(config)
            for seed in range(SIM_SEEDS)
        )
    return float(qps)


def predict(
    model: str, calibration: dict[str, Any], target: float, tuned: KnobConfig | None
) -> tuple[KnobConfig, dict[str, Any]]:
    cluster = cluster_of(calibration)
    scenario = Scenario(pod_profile(model, calibration["rows"]), cluster, HEAVY_TAILED, 95, target)
    long = CapacityModel.build(scenario)
    if tuned is None:
        tuned = long.optimum(CPU_ONLY_BOUNDS)[0]
    predicted = {}
    for key, config in (("whole_query", WHOLE_QUERIES), ("tuned_cpu", tuned)):
        long_qps = long.capacity_qps(config)
        predicted[key] = {
            "qps": round(trial_capacity(scenario, config, long_qps), 2),
            "long_window_qps": round(float(long_qps), 2),
            "work_bound_qps": round(float(work_bound_qps(scenario, config, long.traffic.items)), 2),
        }
    return tuned, predicted


def searched_configs(
    configs: list[tuple[str, KnobConfig]],
) -> list[tuple[tuple[str, ...], KnobConfig]]:
    """The distinct configs of `configs` in their order, each with the columns it stands for: at
    the loose target on 2 workers (c)'s optimum is (b)'s whole queries, and one search serves
    both columns instead of two searches of one config."""
    groups: dict[KnobConfig, list[str]] = {}
    for key, config in configs:
        groups.setdefault(config, []).append(key)
    return [(tuple(keys), config) for config, keys in groups.items()]


def measure(
    pod: Running,
    model: str,
    sizes: Path,
    target: float,
    configs: list[tuple[str, KnobConfig]],
    start_qps: float,
    seed: int,
    workdir: Path,
    curves: dict[str, Any],
    workers: int,
) -> dict[str, float]:
    """One `recsched-loadtest sweep` over the distinct `configs`: each column's searched
    capacity (its trials go into `curves`; columns of one config share one search)."""
    searches = searched_configs(configs)
    config_file = workdir / f"{model}-configs-{seed}.json"
    config_file.write_text(
        json.dumps([{**config.to_dict(), "workers": workers} for _, config in searches])
    )
    out = workdir / f"{model}-sweep-{seed}"
    loadtest_json(
        [
            *("sweep", "--url", pod.url, "--model", model, "--sizes", f"file:{sizes}"),
            *("--target-ms", f"{target:.3f}", "--start-qps", f"{start_qps:.2f}"),
            *("--growth", "1.25", "--trial-s", f"{TRIAL_S:g}", "--warmup-s", f"{TRIAL_WARMUP_S:g}"),
            *("--min-trial-queries", str(MIN_TRIAL_QUERIES), "--max-search-s", str(MAX_SEARCH_S)),
            *("--min-trials", str(MIN_TRIALS), "--max-trials", str(MAX_TRIALS)),
            *("--configs", str(config_file), "--out", str(out), "--token", pod.token),
            *("--seed", str(seed)),
        ]
    )
    results = json.loads((out / "sweep.json").read_text())["results"]
    measured = {}
    for (keys, _), result in zip(searches, results, strict=True):
        for key in keys:
            curves[key] = result["curve"]  # every trial: offered QPS, p95, passed
            measured[key] = float(result["capacity_qps"])
    return measured


def run_model(
    model: str,
    rounds: int,
    workdir: Path,
    target_multiple: float = TARGET_MULTIPLE,
    workers: int = WORKERS,
) -> dict[str, Any]:
    """Calibrations C0..Cn around n rounds of searches: round r is predicted blind from C(r-1)
    and from the mean of C(r-1) and C(r), which bracket its searches in time."""
    sizes = workdir / "heavy-sizes.txt"
    draws = HEAVY_TAILED.draw(np.random.default_rng(0), 20000)
    sizes.write_text("\n".join(str(size) for size in draws.tolist()) + "\n")
    records = []
    with running_pod(model, workers=workers, batch=1024, workdir=workdir) as pod:
        warm_up = ["--sizes", f"file:{sizes}", "--rate", "5", "--duration-s", "5"]
        loadtest_json(["run", "--url", pod.url, "--model", model, *warm_up])  # discarded
        before = calibrate(pod, model, sizes, 0, workers)
        target = round(target_multiple * before["rows"][-1]["service_ms"], 1)
        tuned, _ = predict(model, before, target, None)
        log(f"{model}: target {target} ms, tuned {tuned}, {before}")
        for round_number in range(1, rounds + 1):
            _, blind = predict(model, before, target, tuned)
            configs = [("whole_query", WHOLE_QUERIES), ("tuned_cpu", tuned)]
            if round_number % 2 == 0:
                configs.reverse()
            start = max(0.7 * min(p["qps"] for p in blind.values()), 2.0)
            curves: dict[str, Any] = {}
            measured = measure(
                pod, model, sizes, target, configs, start, round_number, workdir, curves, workers
            )
            after = calibrate(pod, model, sizes, round_number, workers)
            calibration = pooled(before, after)
            _, predicted = predict(model, calibration, target, tuned)
            _, mix_mean = predict(model, calibration | {"method": "mix_mean"}, target, tuned)
            log(f"{model} round {round_number}: {measured} vs {predicted}, blind {blind}")
            records.append(
                {
                    "round": round_number,
                    "order": [key for key, _ in configs],
                    "searches": [list(keys) for keys, _ in searched_configs(configs)],
                    "calibration": calibration,
                    "calibration_before": before,
                    "calibration_after": after,
                    "speed_drift_1024": round(
                        before["rows"][-1]["service_ms"] / after["rows"][-1]["service_ms"], 3
                    ),
                    "predicted": predicted,
                    "predicted_blind": blind,
                    "measured_qps": measured,
                    "measured_over_predicted": ratios(measured, predicted),
                    "measured_over_blind": ratios(measured, blind),
                    "predicted_mix_mean": mix_mean,
                    "measured_over_mix_mean": ratios(measured, mix_mean),
                    "search_trials": curves,
                }
            )
            before = after
    return {
        "model": model,
        "target_ms": target,
        "tuned_cpu_config": tuned.to_dict(),
        "rounds": records,
        "columns": {key: column_summary(records, key) for key in ("whole_query", "tuned_cpu")},
    }


def ratios(measured: dict[str, float], predicted: dict[str, Any]) -> dict[str, float | None]:
    return {
        key: round(measured[key] / predicted[key]["qps"], 3) if predicted[key]["qps"] else None
        for key in measured
    }


def spread(values: list[float]) -> dict[str, float]:
    median = statistics.median(values)
    return {
        "median": round(median, 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "spread_pct": round(100 * (max(values) - min(values)) / median, 1) if median else 0.0,
    }


def column_summary(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    def kept(values: list[float | None]) -> list[float]:
        return [value for value in values if value is not None]

    ratios = kept([r["measured_over_predicted"][key] for r in records])
    blind = kept([r.get("measured_over_blind", {}).get(key) for r in records])
    previous = kept([r.get("measured_over_mix_mean", {}).get(key) for r in records])
    summary: dict[str, Any] = {
        "runs": len(records),
        "measured_qps": spread([r["measured_qps"][key] for r in records]),
        "predicted_qps": spread([r["predicted"][key]["qps"] for r in records]),
        "ratio": spread(ratios) if ratios else None,
        "ratio_blind": spread(blind) if blind else None,
        "ratio_mix_mean": spread(previous) if previous else None,
        "rounds_within_tolerance": sum(abs(value - 1) <= TOLERANCE for value in ratios),
    }
    summary["within_tolerance"] = bool(ratios) and abs(summary["ratio"]["median"] - 1) <= TOLERANCE
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="rmc1,wnd")
    parser.add_argument("--rounds", type=int, default=3, help="calibrate-predict-measure rounds")
    parser.add_argument(
        "--target-multiple",
        type=float,
        default=TARGET_MULTIPLE,
        help="p95 target as a multiple of the first calibration's 1024-item time (1.5: the "
        "headline's loose target); at 1.0 the p95 at light load is already 60-80%% of the "
        "target, so capacity swings with speed",
    )
    parser.add_argument(
        "--workers", type=int, default=WORKERS, help="the pod's workers (and the simulated ones)"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--append",
        action="store_true",
        help="add these models to --out's document (replacing their earlier results), so the "
        "models can be measured in separate holds of the bench lock",
    )
    args = parser.parse_args(argv)
    stop_on_sigterm()
    header = run_header()
    started = dt.datetime.now(dt.UTC)
    models = args.models.split(",")
    document: dict[str, Any] = {
        **header,
        "workers": args.workers,
        "sizes": HEAVY_TAILED.name,
        "calibration_items": list(CALIBRATION_ITEMS),
        "target_multiple": args.target_multiple,
        "tolerance": TOLERANCE,
        "trial": {
            "trial_s": TRIAL_S,
            "warmup_s": TRIAL_WARMUP_S,
            "min_queries": MIN_TRIAL_QUERIES,
            "min_trials": MIN_TRIALS,
            "max_trials": MAX_TRIALS,
        },
        "results": [],
    }
    if args.append and args.out.exists():
        earlier = json.loads(args.out.read_text())
        if earlier["target_multiple"] != args.target_multiple or earlier["workers"] != args.workers:
            parser.error(f"{args.out} holds another target multiple or worker count")
        document = earlier | {"trial": document["trial"]}
        document["results"] = [r for r in earlier["results"] if r["model"] not in models]
    with tempfile.TemporaryDirectory(prefix="real-capacity-") as scratch:
        for model in models:
            before = load_average()
            model_started = dt.datetime.now(dt.UTC)
            result = run_model(
                model, args.rounds, Path(scratch), args.target_multiple, args.workers
            )
            result["run"] = {
                "command": header["command"],
                "commit": header["commit"],
                "date": f"{model_started:%Y-%m-%d %H:%M} UTC",
                "load_average_before": before,
                "load_average_after": load_average(),
                "minutes": round((dt.datetime.now(dt.UTC) - model_started).total_seconds() / 60, 1),
            }
            document["results"].append(result)
            document["load_average_after"] = load_average()
            document["minutes"] = round((dt.datetime.now(dt.UTC) - started).total_seconds() / 60, 1)
            write_results(args.out, document, render(document))  # what is done survives a timeout
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
