"""Renders `bench/headline.py`'s rows: docs/benchmarks/headline.md and headline.json.

The JSON is a list of rows (one per cluster shape, model and target) with the columns' capacities
and configs, the ratios, and a `run` record (command, machine, date, seeds, policy commit) so every
figure carries its provenance. The markdown gives one table per shape, the paper's figures beside
the ratios, and a reading generated from the rows (where the ~2x appears and where it does not).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from harness import cpu_model, load_average

ROOT = Path(__file__).resolve().parents[1]
POLICY = "operator/src/recsched_operator/tuner"
SHAPE_TEXT = {
    "2x8+gpu": "2 CPU pods x 8 workers + 1 GPU pod (the tuner study's cluster)",
    "1x32+gpu": "1 CPU pod x 32 workers + 1 GPU pod (the paper's server: DeepRecInfra's 32 "
    "single-core inference engines)",
}
TWO_X = 1.8
"""A ratio at or above this counts as "about 2x"."""
PAPER = {
    "c/a": "~2x across the 8 models [A]; per-model values not verified",
    "c/b": "none (the paper has no whole-query baseline)",
    "d/c": "~5x, up to 5.8x [S, unverified], with a GTX 1080 Ti",
    "d/e": "none (the paper's one-shot search is not scored against an optimum)",
}


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def with_ratios(row: dict[str, Any]) -> dict[str, Any]:
    pairs = {
        "c/a": ("tuned_cpu_qps", "static_baseline_qps"),
        "c/b": ("tuned_cpu_qps", "whole_query_qps"),
        "d/c": ("tuned_gpu_qps", "tuned_cpu_qps"),
        "d/e": ("tuned_gpu_qps", "optimum_qps"),
        "paper_gpu/cpu_optimum": ("paper_gpu_optimum_qps", "cpu_optimum_qps"),
    }
    values = {name: ratio(row[n], row[d]) for name, (n, d) in pairs.items()}
    return {**row, "ratios": {k: None if v is None else round(v, 3) for k, v in values.items()}}


def _x(value: float | None) -> str:
    return "n/a (b = 0)" if value is None else f"{value:.2f}x"


def _config(config: dict[str, int]) -> str:
    threshold = config["offloadThreshold"]
    return f"{config['batchSize']}/{'off' if threshold > 1024 else threshold}"


def _others(row: dict[str, Any]) -> str:
    chosen = str(row["static_baseline_config"]["batchSize"])
    return ", ".join(f"B={b}: {q:.0f}" for b, q in row["static_batch_qps"].items() if b != chosen)


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | target (ms) | (a) static B/T: QPS (other fixed B) | (b) whole queries | "
        "(c) tuned CPU: config QPS (min) | (d) tuned GPU: config QPS (min) | (e) optimum | "
        "CPU-only optimum | optimum, paper's GPU | (c)/(a) | ceiling of (c)/(a) | (c)/(b) | "
        "(d)/(c) | same, paper's GPU | (d)/(e) worst seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        r = row["ratios"]
        worst = row["tuned_gpu_min_qps"] / row["optimum_qps"]
        lines.append(
            f"| {row['model']} | {row['target']} {row['targetMs']:.1f} | "
            f"{_config(row['static_baseline_config'])}: {row['static_baseline_qps']:.0f} "
            f"({_others(row)}) | "
            f"{row['whole_query_qps']:.0f} | "
            f"{_config(row['tuned_cpu_config'])} {row['tuned_cpu_qps']:.0f} "
            f"({row['tuned_cpu_min_qps']:.0f}) | "
            f"{_config(row['tuned_gpu_config'])} {row['tuned_gpu_qps']:.0f} "
            f"({row['tuned_gpu_min_qps']:.0f}) | "
            f"{_config(row['optimum_config'])} {row['optimum_qps']:.0f} | "
            f"{_config(row['cpu_optimum_config'])} {row['cpu_optimum_qps']:.0f} | "
            f"{_config(row['paper_gpu_optimum_config'])} {row['paper_gpu_optimum_qps']:.0f} | "
            f"{_x(r['c/a'])} | {row['cpu_work_ratio']:.2f}x | {_x(r['c/b'])} | "
            f"{_x(r['d/c'])} | {_x(r['paper_gpu/cpu_optimum'])} | "
            f"{worst:.2f}{'' if row['floor_met'] else ' **below 0.95**'} |"
        )
    return lines


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}x" if values else "n/a"


def _median(rows: list[dict[str, Any]], key: str) -> str:
    values = sorted(r["ratios"][key] for r in rows if r["ratios"][key] is not None)
    return f"{values[len(values) // 2]:.2f}x" if values else "n/a"


def reading(rows: list[dict[str, Any]]) -> list[str]:
    """Where tuning gives about 2x over each baseline and where not, with the reason in numbers."""

    def names(selected: list[dict[str, Any]]) -> str:
        """Grouped by model; a model whose every row is selected reads "model (all N)"."""
        groups: dict[str, list[str]] = {}
        for r in selected:
            groups.setdefault(r["model"], []).append(f"{r['target']} {r['cluster']}")
        parts = [
            f"{model} (all {len(cases)})"
            if len(cases) == sum(r["model"] == model for r in rows)
            else f"{model} ({', '.join(cases)})"
            for model, cases in groups.items()
        ]
        return ", ".join(parts) or "none"

    def ratios(key: str, selected: list[dict[str, Any]] | None = None) -> list[float]:
        return [r["ratios"][key] for r in selected or rows if r["ratios"][key] is not None]

    over_static = [r for r in rows if (r["ratios"]["c/a"] or 0) >= TWO_X]
    over_whole = [r for r in rows if r["ratios"]["c/b"] is None or r["ratios"]["c/b"] >= TWO_X]
    whole_zero = [r for r in rows if r["whole_query_qps"] == 0]
    below = [r for r in rows if not r["floor_met"]]
    over_b32 = [r["tuned_cpu_qps"] / r["static_batch_qps"]["32"] for r in rows]
    shapes = list(dict.fromkeys(r["cluster"] for r in rows))
    per_shape = "; ".join(
        f"{shape}: (c)/(a) median {_median(of, 'c/a')}, (c)/(b) median {_median(of, 'c/b')} "
        f"where (b) > 0, (d)/(c) {_span(ratios('d/c', of))}"
        for shape in shapes
        for of in [[r for r in rows if r["cluster"] == shape]]
    )
    misses = [
        f"{r['model']} {r['target']} {r['cluster']}: seed {run['seed']} settled on "
        f"{_config(run['config'])} at {run['qps'] / r['optimum_qps']:.2f} of the optimum "
        f"{_config(r['optimum_config'])}"
        for r in below
        for run in r["tuned_gpu_runs"]
        if run["qps"] < 0.95 * r["optimum_qps"]
    ]
    return [
        f"* **Over the paper's fixed batch, (c)/(a) >= {TWO_X}x** in {len(over_static)}/"
        f"{len(rows)} rows ({names(over_static)}); the range is {_span(ratios('c/a'))} over the "
        f"better of B = 32 and 64, {_span(over_b32)} over B = 32 alone. Why not 2x: the gain "
        "is mostly cheaper items, and on this size mix an item costs only "
        f"{_span([r['cpu_work_ratio'] for r in rows])} more at the fixed batch than at the "
        "tuned one (column 'work ratio': the ratio of the two configs' work bounds, the QPS at "
        "which their workers would be busy all the time). Half the queries have at most 70 "
        "items, so B = 64 already runs them whole or in two requests, and on these profiles "
        "(scale 0.01, one thread, this CPU) the cost per item falls little beyond B = 64 (NCF "
        "and RMC1 most). The rest of (c)/(a) is latency: a config reaches a different share of "
        "its work bound before p95 crosses the target. A 2x needs a batch far from the best "
        "(B = 32 on NCF) or a mix of larger queries.",
        f"* **Over a whole-query server, (c)/(b) >= {TWO_X}x** in {len(over_whole)}/{len(rows)} "
        f"rows. Whole queries meet the target at no load at all in {len(whole_zero)} rows "
        f"({names(whole_zero)}): when the p95 query alone takes longer than the target on one "
        "worker, only splitting it across workers meets a tight target. At loose targets "
        f"whole queries are the most efficient config, so (c)/(b) is {_span(ratios('c/b'))} "
        "where (b) > 0.",
        f"* **Core count**: {per_shape}. More CPU workers beside one GPU leave the GPU less to "
        "add; splitting gains about the same on both shapes.",
        f"* **GPU offload, (d)/(c)**: {_span(ratios('d/c'))} with the H200 (at scale 0.01 it runs "
        "any query in about 0.2-1.2 ms, one to two orders of magnitude faster than a CPU worker "
        "on large ones); with the paper's GTX 1080 Ti (the speedup table) the optimum over the "
        f"CPU-only optimum would be {_span(ratios('paper_gpu/cpu_optimum'))}.",
        f"* **Floor (d) >= 0.95 x (e)** on the worst seed: {len(rows) - len(below)}/{len(rows)} "
        f"rows; below it: {names(below)}" + (f" ({'; '.join(misses)})." if misses else "."),
    ]


SUMMARY_BEGIN = "<!-- headline table: begin (bench/headline.py writes this block) -->"
SUMMARY_END = "<!-- headline table: end -->"
SUMMARY_SHAPE = "1x32+gpu"
"""docs/benchmarks.md shows the paper's server; headline.md has the study's cluster too."""


def summary_table(rows: list[dict[str, Any]]) -> list[str]:
    """The compact table docs/benchmarks.md opens with: QPS within the target per column."""
    selected = [r for r in rows if r["cluster"] == SUMMARY_SHAPE] or rows
    lines = [
        "| model | p95 target (ms) | (a) static batch | (b) whole queries | (c) tuned, CPU | "
        "(d) tuned, CPU + GPU | (e) grid optimum | (c)/(a) | (c)/(b) | (d)/(c) | (d)/(e) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in selected:
        r = row["ratios"]
        lines.append(
            f"| {row['model']} | {row['target']} {row['targetMs']:.1f} | "
            f"{row['static_baseline_qps']:.0f} | {row['whole_query_qps']:.0f} | "
            f"{row['tuned_cpu_qps']:.0f} | {row['tuned_gpu_qps']:.0f} | {row['optimum_qps']:.0f} | "
            f"{_x(r['c/a'])} | {_x(r['c/b'])} | {_x(r['d/c'])} | {_x(r['d/e'])} |"
        )
    run = selected[0]["run"]
    lines += [
        "",
        f"QPS within the p95 target on the simulator, {SHAPE_TEXT.get(SUMMARY_SHAPE, '')}; "
        f"`{run['command']}`, {run['machine']}, {run['date']}, tuner seeds {run['seeds']} "
        f"(median run), policy commit {run['policyCommit']}. Both cluster shapes, the configs "
        "and the reading: `docs/benchmarks/headline.md`.",
    ]
    return lines


def update_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the block between the markers in `path` (left alone if it has none)."""
    text = path.read_text() if path.is_file() else ""
    if SUMMARY_BEGIN not in text or SUMMARY_END not in text:
        return
    head, rest = text.split(SUMMARY_BEGIN, 1)
    tail = rest.split(SUMMARY_END, 1)[1]
    block = "\n".join([SUMMARY_BEGIN, *summary_table(rows), SUMMARY_END])
    path.write_text(head + block + tail)


def policy_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("log", "-1", "--format=%h %cI", "--", POLICY)
    dirty = git("status", "--porcelain", "--", POLICY)
    return commit + (" + uncommitted changes" if dirty else "")


def write_report(
    out: Path,
    rows: list[dict[str, Any]],
    seeds: tuple[int, ...],
    wall_s: float,
    command: str,
    summary: Path | None = None,
) -> None:
    """Write `out` (.md) and its .json; refresh the table block of `summary` when given."""
    run = {
        "command": f"nice -n 10 .venv/bin/python {command}",
        "machine": f"{platform.node()} ({os.cpu_count()} shared cores, {cpu_model()})",
        "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "seeds": list(seeds),
        "runsPerTunedColumn": len(seeds),
        "capacityTraffic": "5000 queries, seed 0, 10 bisection steps",
        "policyCommit": policy_commit(),
        "wallS": round(wall_s),
        "loadAverageAtEnd": load_average(),
    }
    rows = [{**with_ratios(row), "run": run} for row in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        "# Headline: the paper's claims on the validated simulator",
        "",
        f"Generated by `{run['command']}` on {run['machine']} at {run['date']} in "
        f"{run['wallS']} s (load average at the end {run['loadAverageAtEnd']}). Tuner policy: "
        f"commit {run['policyCommit']} (`{POLICY}`). Tuner seeds {list(seeds)}: {len(seeds)} "
        "runs per tuned column per row; the QPS shown is the median run's, the worst in "
        "brackets. Capacities are deterministic: one traffic sample (5000 queries, seed 0) per "
        "row, shared by every column (common random numbers), bisected in 10 steps (tolerance "
        "about 0.1% of the config's work bound). Raw rows: `docs/benchmarks/headline.json`.",
        "",
        "Setup: measured CPU profiles (`operator/src/recsched_operator/profiles/`, scale 0.01, "
        "one thread, this machine) and the measured NVIDIA H200 profile "
        "(`inference_pod/src/recsched_pod/gpu_profiles/nvidia-h200.json`) for the GPU pod; "
        "heavy-tailed query sizes (mean 156, median 70, 2.5% at the 1024 cap); p95 targets: "
        "tight = 0.5x, loose = 1.5x one worker's time for a 1024-item request. Columns: (a) the "
        "paper's static baseline, a fixed batch as its scripts set it (32 or 64; the better "
        "shown), no offload; (b) a request-batching server: whole queries (B = 1024), no "
        "splitting, no offload; (c) DeepRecSched-CPU: the online tuner from the worst corner, "
        "threshold pinned off, offered 75% of the CPU-only optimum's capacity; (d) "
        "DeepRecSched-GPU: the tuner over both knobs from the worst corner, offered 75% of the "
        "optimum's capacity; (e) the grid optimum (B 1..1024 x T 32..1024 and off). Configs "
        "read B/T. Each tuner run makes 40 decisions on 30 s windows with 10% noise on latencies "
        "(`tuner.simulation.study.run_case`).",
        "",
        "Paper's figures beside the ratios: "
        + "; ".join(f"{k}: {v}" for k, v in PAPER.items())
        + ". The facts file (`research/deeprecsys-facts.md` section 5) holds no per-model "
        "figures.",
    ]
    for shape in dict.fromkeys(r["cluster"] for r in rows):
        selected = [r for r in rows if r["cluster"] == shape]
        lines += ["", f"## {SHAPE_TEXT.get(shape, shape)}", "", *table(selected)]
    lines += ["", "## Where the ~2x appears", "", *reading(rows)]
    out.write_text("\n".join(lines) + "\n")
    if summary is not None:
        update_summary(summary, rows)
