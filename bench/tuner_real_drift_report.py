"""The markdown of `bench/tuner_real_drift.py`: a summary per change and policy, then every run.

Generated only; the reading of the figures goes into docs/benchmarks/tuner.md by hand.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def _spread(values: Sequence[float | None]) -> str:
    """'median (min-max)' of the known values to 0.1, with how many were unknown ('never')."""
    known = [round(v, 1) for v in values if v is not None]
    never = len(values) - len(known)
    if not known:
        return "never" if never else "n/a"
    text = f"{round(statistics.median(known), 1):g}"
    if min(known) != max(known):
        text += f" ({min(known):g}-{max(known):g})"
    return text + (f", {never} never" if never else "")


def _config(config: Sequence[int] | None) -> str:
    if config is None:
        return "n/a"
    batch, threshold = config
    return f"B={batch}" + ("" if threshold > 1024 else f", T={threshold}")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _summary_rows(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    keys = sorted({(r["kind"], r["policy"]) for r in runs}, key=lambda k: (k[0], k[1] != "tuner"))
    for kind, policy in keys:
        group = [
            r
            for r in runs
            if (r["kind"], r["policy"]) == (kind, policy)
            and "outcome" in r
            and not r["interrupted"]
        ]
        if not group:
            continue
        outcomes = [r["outcome"] for r in group]
        configs = ", ".join(
            f"{_config(o['config_before'])} -> {_config(o['config_after'])}" for o in outcomes
        )
        rows.append(
            f"| {kind} | {policy} | {len(group)} | "
            f"{_spread([o['met_after_decisions'] for o in outcomes])} | "
            f"{_spread([o['met_after_s'] for o in outcomes])} | "
            f"{_spread([o['violation_after_s'] for o in outcomes])} | "
            f"{_spread([o['violation_run_s'] for o in outcomes])} | "
            f"{_spread([o['p95_before_ms'] for o in outcomes])} | "
            f"{_spread([o['p95_after_ms'] for o in outcomes])} | {configs} |"
        )
    return rows


def _state_at_change(run: Mapping[str, Any], outcome: Mapping[str, Any]) -> str:
    if run["policy"] != "tuner":
        return "(held)"
    return "(converged)" if outcome.get("converged_at_change") else "(searching)"


def _run_row(run: Mapping[str, Any]) -> str:
    outcome = run.get("outcome") or {}
    met = outcome.get("met_after_decisions")
    met_s = outcome.get("met_after_s")
    load = f"{run['load_average_before'][0]:g} / {run['load_average_after'][0]:g}"
    return (
        f"| {run['started'][11:16]} | {run['kind']} | {run['policy']} | {run['round']}"
        f"{' (interrupted)' if run['interrupted'] else ''} | "
        f"{run['qps_before']:g} -> {run['qps_after']:g} | "
        f"{run['target_before_ms']:g} -> {run['target_after_ms']:g} | "
        f"{_config(outcome.get('config_before'))} "
        f"{_state_at_change(run, outcome)} | "
        f"{_config(outcome.get('config_after'))} | "
        f"{'never' if met is None else met} | {'never' if met_s is None else f'{met_s:.0f}'} | "
        f"{outcome.get('violation_after_s', 'n/a')} | {outcome.get('violation_run_s', 'n/a')} | "
        f"{_ms(outcome.get('p95_before_ms'))} | {_ms(outcome.get('p95_after_ms'))} | "
        f"{run['decisions']} / {run['changes']} | {load} |"
    )


def render(document: Mapping[str, Any]) -> str:
    meta, runs = document["meta"], document["runs"]
    settings = meta["settings"]
    machine = meta["machine"]
    lines = [
        "# Drift on the real loop: RMC1 in local mode (generated)",
        "",
        f"Command: `{meta['command']}`, {meta['date']} to {meta['finished']}; code measured: "
        f"{meta['code_commit']}. Machine: {machine['node']}, {machine['cpus']} CPUs "
        f"({machine['cpu_model']}), Python {machine['python']}, shared; 1-minute load average "
        f"{meta['load_average_before'][0]:g} before, {meta['load_average_after'][0]:g} after "
        "(each run's own in the last table). Raw windows and figures: "
        "`docs/benchmarks/tuner_real_drift.json`."
        + "".join(
            f" Earlier runs: `{m['command']}`, {m['date']} to {m['finished']}, code "
            f"{m['code_commit']}."
            for m in meta.get("earlier", [])
        ),
        "",
        f"{meta['model']}, {meta['pod']}; {meta['sizes']} sizes at constant arrivals, "
        f"{settings['qps']:g} QPS; p95 target {settings['target_ms']:g} ms over "
        f"{meta['window_s']} s windows, one decision every {meta['interval_s']} s. Tuned runs "
        f"start at B = {settings['start_batch']} (bounds {settings['batch_min']}-1024), hold it "
        f"one window, tune for {settings['settle_s']:g} s, then the change: load x"
        f"{settings['step_factor']:g}, or the target halved by a manifest edit; "
        f"{settings['after_s']:g} s after it. Static: the config the tuned run had at the change, "
        f"held with tuning mode off ({settings['static_settle_s']:g} s before the change), "
        "right after that tuned run. 'Decisions until met' counts the decisions after the change "
        "before the first window within target lying wholly after it (0: none over target "
        "before it; a later window over target, a probe or noise, counts in violation s only); "
        "violation s = windows over target x the interval, after the change "
        "and over the tuned part of the run. p95 before: median of the windows in the minute "
        "before the change; after: median of the windows wholly after it.",
        "",
        "| change | policy | runs | decisions until met | seconds until met | violation s after "
        "| violation s, run | p95 before ms | p95 after ms | config at change -> at end |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *_summary_rows(runs),
        "",
        "Median (min-max) over the completed runs; 'never': no window within target after the "
        "change.",
        "",
        "## Every run",
        "",
        "| UTC | change | policy | round | QPS | target ms | config at change | at end | "
        "decisions until met | s until met | violation s after | violation s run | p95 before "
        "| p95 after | decisions / changes | load avg before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(_run_row(run) for run in runs),
        "",
    ]
    return "\n".join(lines)
