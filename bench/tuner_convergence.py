"""Tuner convergence on the simulator: the wide study of issue 15.

All eight measured profiles, SLOs of 0.5x, 1x, 1.5x and 3x one worker's time for a 1024-item
request, p95 and p99, the heavy, production and lognormal(5.1, 0.2) size mixes, offered loads of
50/75/90% of the grid optimum's capacity, and CPU-only clusters or clusters with a GPU pod (the
speedup table, or the H200 profile in inference_pod/src/recsched_pod/gpu_profiles/, read as a
data file). `simulation.study.design` samples 12 cases per model (every level of every factor
with every model; its docstring says how). Each case runs the real policy from the grid corner of
lowest capacity for `--seeds` seeds, with 10% lognormal noise on latencies (2% on utilisations),
and is scored against the exhaustive grid optimum: the floor is >= 95% of the optimum's capacity
within 15 decisions, held to the end, and never more than 2 intervals over target in a row after
converging.

Capacities (bisections on common random numbers) are deterministic per scenario, so they are kept
in `--cache` (a JSON file) and reruns after a policy change only simulate the tuner's windows.
Cases run in `--jobs` processes. Writes the study section of docs/benchmarks/tuner.md (between
markers; the rest of the file is kept) and the per-run results to docs/benchmarks/tuner_study.json.

    nice -n 10 .venv/bin/python bench/tuner_convergence.py [--seeds 3] [--jobs 2] [--models m1,m2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from recsched_operator.tuner.knobs import describe_threshold
from recsched_operator.tuner.simulation.profiles import gpu_profile_path, profile_names
from recsched_operator.tuner.simulation.study import (
    CLUSTERS,
    LOADS,
    PERCENTILES,
    SIZE_MIXES,
    SLO_MULTIPLES,
    CapacityCache,
    StudyCase,
    design,
    floor_met,
    prepare,
    run_case,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs/benchmarks/tuner.md"
RAW = ROOT / "docs/benchmarks/tuner_study.json"
GPU_PROFILE = gpu_profile_path("nvidia-h200")
BEGIN, END = "<!-- tuner_convergence: begin -->", "<!-- tuner_convergence: end -->"
INTERVALS = 30
POLICY = "operator/src/recsched_operator/tuner"
WINDOW_QUERIES = 20000


def fmt(batch: int, threshold: int) -> str:
    return f"{batch}/{describe_threshold(threshold)}"


def run_one(task: tuple[StudyCase, list[int], dict[str, Any]]) -> dict[str, Any]:
    """Prepare a case (from the cached capacities given) and run its seeds."""
    case, seeds, cached = task
    started = time.process_time()
    cache = CapacityCache()
    cache.merge(cached)
    prepared = prepare(case, GPU_PROFILE, cache)
    runs = []
    for seed in seeds:
        run, score = run_case(prepared, seed, INTERVALS, window_queries=WINDOW_QUERIES)
        runs.append(
            {
                "seed": seed,
                "reached_at": score.reached_at,
                "converged_at": score.converged_at,
                "final": [score.final.batch_size, score.final.offload_threshold],
                "final_ratio": round(score.final_ratio, 4),
                "configs_tried": score.configs_tried,
                "longest_violation_after_converging": score.longest_violation_after_converging,
                "floor_met": floor_met(score),
                "trace": [f"{s.index} {s.action}: {s.reason}" for s in run.steps]
                if not floor_met(score)
                else [],
            }
        )
    cache.store(case.scenario_key, prepared.capacity, prepared.optimum, prepared.optimum_qps)
    return {
        "case": case.__dict__,
        "label": case.describe(),
        "target_ms": prepared.scenario.target_ms,
        "optimum": [prepared.optimum.batch_size, prepared.optimum.offload_threshold],
        "optimum_qps": prepared.optimum_qps,
        "start": [prepared.start.batch_size, prepared.start.offload_threshold],
        "start_qps": prepared.capacity.capacity_qps(prepared.start),
        "runs": runs,
        "cpu_s": time.process_time() - started,
        "cache": {case.scenario_key: cache.entries()[case.scenario_key]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--models", default=",".join(profile_names()))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/recsched-tuner-capacities.json"))
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--raw", type=Path, default=RAW)
    parser.add_argument("--only", default="", help="substring of a case label to run alone")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()
    cache = CapacityCache(args.cache)
    cases = [c for c in design(args.models.split(",")) if args.only in c.describe()]
    seeds = list(range(1, args.seeds + 1))
    tasks = [
        (case, seeds, {k: v for k, v in cache.entries().items() if k == case.scenario_key})
        for case in cases
    ]
    results = []
    partial = args.raw.with_suffix(".partial.jsonl")
    partial.write_text("")
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for result in pool.imap_unordered(run_one, tasks):
            cache.merge(result.pop("cache"))
            cache.save()
            results.append(result)
            with partial.open("a") as stream:
                stream.write(json.dumps(result) + "\n")
            met = sum(r["floor_met"] for r in result["runs"])
            print(
                f"[{len(results)}/{len(tasks)} {time.perf_counter() - started:.0f} s] "
                f"{result['label']}: {met}/{len(seeds)}",
                file=sys.stderr,
            )
    cache.save()
    results.sort(key=lambda r: StudyCase(**r["case"]))
    meta = {
        "command": "nice -n 10 .venv/bin/python bench/tuner_convergence.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.node()} ({os.cpu_count()} shared cores)",
        "finished": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "wall_s": round(time.perf_counter() - started),
        "cpu_s": round(sum(r["cpu_s"] for r in results)),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "seeds": seeds,
        "intervals": INTERVALS,
        "policy_commit": _commit(),
    }
    args.raw.write_text(json.dumps({"meta": meta, "cases": results}, indent=1) + "\n")
    write_report(args.out, results, meta)
    return 0


def _commit() -> str:
    """The last commit of the tuner's code, marked '+ changes' when the checkout differs."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", POLICY)
    return git("log", "-1", "--format=%h", "--", POLICY) + (" + changes" if dirty else "")


def _span(values: list[int]) -> str:
    return f"{statistics.median(values):g} / {max(values)}" if values else "never"


def case_row(result: dict[str, Any]) -> str:
    case, runs = result["case"], result["runs"]
    reached = [r["reached_at"] for r in runs if r["reached_at"] is not None]
    never = len(runs) - len(reached)
    return (
        f"| {case['model']} | {case['slo_multiple']:g}x p{case['percentile']} "
        f"{result['target_ms']:.1f} | {case['mix']} | {case['cluster']} | {case['load']:.0%} | "
        f"{fmt(*result['optimum'])} {result['optimum_qps']:.0f} | "
        f"{fmt(*result['start'])} {result['start_qps']:.0f} | "
        f"{_span(reached)}{f' ({never} never)' if never else ''} | "
        f"{_span([r['configs_tried'] for r in runs])} | "
        f"{min(r['final_ratio'] for r in runs):.0%} | "
        f"{max(r['longest_violation_after_converging'] for r in runs)} | "
        f"{sum(r['floor_met'] for r in runs)}/{len(runs)} |"
    )


def level_rows(results: list[dict[str, Any]]) -> list[str]:
    factors: list[tuple[str, str, tuple[Any, ...]]] = [
        ("model", "model", tuple(sorted({r["case"]["model"] for r in results}))),
        ("SLO", "slo_multiple", SLO_MULTIPLES),
        ("percentile", "percentile", PERCENTILES),
        ("size mix", "mix", SIZE_MIXES),
        ("load", "load", LOADS),
        ("cluster", "cluster", CLUSTERS),
    ]
    rows = []
    for name, key, levels in factors:
        for level in levels:
            runs = [run for r in results if r["case"][key] == level for run in r["runs"]]
            if not runs:
                continue
            reached = [run["reached_at"] for run in runs if run["reached_at"] is not None]
            label = (
                f"{level:.0%}"
                if key == "load"
                else f"{level:g}x"
                if key == "slo_multiple"
                else level
            )
            rows.append(
                f"| {name} | {label} | {sum(run['floor_met'] for run in runs)}/{len(runs)} | "
                f"{_span(reached)} | {_span([run['configs_tried'] for run in runs])} | "
                f"{min(run['final_ratio'] for run in runs):.0%} |"
            )
    return rows


def write_report(out: Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    runs = [run for r in results for run in r["runs"]]
    reached = [run["reached_at"] for run in runs if run["reached_at"] is not None]
    tried = [run["configs_tried"] for run in runs]
    met = sum(run["floor_met"] for run in runs)
    lines = [
        BEGIN,
        "## Wide study: every model, SLO, percentile, size mix, load and cluster (issue 15)",
        "",
        f"`{meta['command']}` on {meta['machine']}, finished {meta['finished']}: "
        f"{len(results)} cases x seeds {meta['seeds'][0]}..{meta['seeds'][-1]} = {len(runs)} "
        f"runs in {meta['wall_s']} s wall ({meta['cpu_s']} s CPU; 1-minute load average "
        f"{meta['load_average_before'][0]} before, {meta['load_average_after'][0]} after), "
        f"policy at commit {meta.get('policy_commit', 'unknown')}. "
        "Raw results: `docs/benchmarks/tuner_study.json`.",
        "",
        "Each run: the real policy from the grid corner of lowest capacity, "
        f"{meta['intervals']} decisions, one 30 s window (QPS x 30 s queries, at most 20,000) "
        "after a 10 s cooldown per decision, 10% lognormal noise on every latency percentile "
        "and 2% on utilisations. Clusters: 2 CPU pods x 8 workers, plus one GPU pod with the "
        "speedup table's times (`gpu-table`, the shipped profiles) or the H200's measured "
        "times (`gpu-h200`), or none (`cpu-only`: threshold pinned off, grid of 11 batch "
        "sizes; 77 configs with a GPU pod). SLO = multiple x one worker's time for a "
        "1024-item request, on the tracked percentile. Capacity = highest QPS with that "
        "percentile within target (bisection on common random numbers).",
        "",
        "Sampling (`simulation.study.design`): per model the full SLO x size-mix cross "
        "(12 cases), with load and cluster as two orthogonal Latin squares over it shifted "
        "per model, and p95/p99 alternating: every level of every factor appears with every "
        "model (each SLO 3 times, each mix, load and cluster 4 times, each percentile 6 "
        "times per model).",
        "",
        f"**Floor** (>= 95% of the optimum's capacity within 15 decisions, held to the end; "
        f"never more than 2 intervals over target in a row after converging): "
        f"**{met}/{len(runs)} runs**. Decisions to >= 95%: median "
        f"{statistics.median(reached) if reached else 'n/a'}, worst "
        f"{max(reached) if reached else 'n/a'}"
        f"{f' ({len(runs) - len(reached)} runs never)' if len(reached) < len(runs) else ''}; "
        f"configs tried per run: median {statistics.median(tried):g}, worst {max(tried)}.",
        "",
        "| factor | level | floor met | decisions to >= 95% (median / worst) | configs tried "
        "(median / worst) | worst final capacity |",
        "|---|---|---|---|---|---|",
        *level_rows(results),
        "",
        "| model | SLO (ms) | size mix | cluster | load | grid optimum B/T, qps | start B/T, "
        "qps | decisions to >= 95% (median / worst) | configs tried (median / worst) | worst "
        "final capacity | max intervals over target after converging | floor met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(case_row(r) for r in results),
        END,
    ]
    text = out.read_text() if out.exists() else ""
    block = "\n".join(lines)
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = block + "\n\n" + text
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
