"""Renders `docs/benchmarks/real_capacity.md` from the document `real_capacity.py` writes."""

from __future__ import annotations

from typing import Any

LABELS = {"whole_query": "(b) whole queries, B = 1024", "tuned_cpu": "(c) tuned CPU"}


def _config(config: dict[str, int]) -> str:
    return f"B = {config['batchSize']}, offload off"


def render(document: dict[str, Any]) -> str:
    tolerance_pct = round(100 * document["tolerance"])
    lines = [
        "# Simulator capacity checked on a real pod",
        "",
        f"Run {document['date']} ({document['minutes']} min) on {document['machine']}; load "
        f"average (1, 5, 15 min) {document['load_average']['before']} before, "
        f"{document['load_average']['after']} after. Command: `{document['command']}`; raw data "
        "in `docs/benchmarks/real_capacity.json`. One pod, scale 0.01, "
        f"{document['workers']} workers pinned as the pod pins by default, binary protocol, "
        f"`{document['sizes']}` size mix (the headline's), p95 target "
        f"{document['target_multiple']:g}x one worker's time for a 1024-item request as "
        "calibrated on this pod (the shipped profile's own time, in brackets, is 2-3x shorter "
        "than a worker's here: no config would meet it on the simulator). Predicted: "
        "`CapacityModel` on a 1 pod x 2 workers `ClusterShape`, profile calibrated on this pod "
        "as `bench/simulator_validation.py` does (light-load fit, then the speed of a run at "
        "60% of the bound; the light-load calibration alone is shown beside it). Measured: "
        "`recsched-loadtest sweep` of [(b), (c)], three sweeps (so the searches interleave "
        "b, c, b, c, b, c), each search to 5% (it reports the highest rate that passed).",
        "",
        "| model | target ms | column | config | predicted QPS | measured QPS, median "
        "(min-max) | spread | runs | predicted / measured | within "
        f"{tolerance_pct}% | light-load calibration predicted |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in document["results"]:
        for key, column in result["columns"].items():
            config = {"batchSize": 1024} if key == "whole_query" else result["tuned_cpu_config"]
            error = column["error"]
            ratio = "n/a" if error is None else f"{1 + error:.2f}"
            within = "n/a" if error is None else ("yes" if abs(error) <= 0.15 else "**no**")
            lines.append(
                f"| {result['model']} | {result['target_ms']:.1f} "
                f"({result.get('profile_target_ms', 0):.1f}) | {LABELS[key]} | "
                f"{_config(config)} | {column['predicted_qps']:.1f} | "
                f"{column['median_qps']:.1f} ({column['min_qps']:.1f}-{column['max_qps']:.1f}) | "
                f"{column['spread_pct']:.0f}% | {len(column['runs_qps'])} | {ratio} | {within} | "
                f"{column['predicted_light_calibration_qps']:.1f} |"
            )
    lines += [
        "",
        "Calibration per model: factor on the profile's times (light load, then x the "
        "operating speed) and the fixed per-query latency (HTTP and decoding) the simulator "
        "adds.",
        "",
        "| model | light-load factor | operating speed | factor used | per-query latency ms |",
        "|---|---|---|---|---|",
    ]
    for result in document["results"]:
        calibration = result["calibration"]
        lines.append(
            f"| {result['model']} | {calibration['light_factor']:.3f} | "
            f"{calibration['operating_speed']:.3f} | "
            f"{calibration['light_factor'] * calibration['operating_speed']:.3f} | "
            f"{1000 * calibration['query_overhead_s']:.2f} |"
        )
    repeats = [result for result in document["results"] if result.get("repeated_search")]
    if repeats:
        lines += [
            "",
            "## The instrument's own spread (issue 13, section 4)",
            "",
            "`recsched-loadtest capacity --repeat 3` on the same pod right after its sweeps "
            f"(floor: the three agree within {tolerance_pct}%, spread = (max - min) / median):",
            "",
            "| model | config | capacities QPS | median | spread | within floor |",
            "|---|---|---|---|---|---|",
        ]
        for result in repeats:
            repeat = result["repeated_search"]
            values = ", ".join(f"{value:.1f}" for value in repeat["capacities_qps"])
            spread = repeat["spread_pct"]
            within = "n/a" if spread is None else ("yes" if spread <= tolerance_pct else "**no**")
            lines.append(
                f"| {result['model']} | {_config(repeat['config'])} | {values} | "
                f"{repeat['median_qps']:.1f} | "
                f"{'n/a' if spread is None else f'{spread:.1f}%'} | {within} |"
            )
    return "\n".join(lines) + "\n"
