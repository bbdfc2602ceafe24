"""Tables of `docs/benchmarks/real_capacity.md` from the document `real_capacity.py` writes (pure).

Generated tables only: what they mean is written in docs/benchmarks.md.
"""

from __future__ import annotations

import statistics
from typing import Any

from harness import header_line

LABELS = {"whole_query": "(b) whole queries", "tuned_cpu": "(c) tuned CPU"}


def _config(config: dict[str, int]) -> str:
    return f"B = {config['batchSize']}"


def _range(summary: dict[str, float], digits: int = 1) -> str:
    return (
        f"{summary['median']:.{digits}f} ({summary['min']:.{digits}f}-{summary['max']:.{digits}f})"
    )


def _optional_range(summary: dict[str, float] | None) -> str:
    return _range(summary, 2) if summary else "n/a"


def _extra_latency(calibration: dict[str, Any]) -> str:
    """The latency a query adds beyond its worker's time, as the simulator was given it."""
    per_item = calibration.get("item_overhead_ms")
    text = f"{calibration['query_overhead_ms']:.2f}"
    return text if per_item is None else f"{text} + {1e3 * per_item:.1f} us/item"


def _summary_table(document: dict[str, Any]) -> list[str]:
    tolerance_pct = round(100 * document["tolerance"])
    lines = [
        "| model | target ms | column | config | predicted QPS | measured QPS | measured spread "
        f"| runs | measured / predicted | rounds within {tolerance_pct}% "
        f"| median within {tolerance_pct}% | measured / blind prediction "
        "| measured / previous method's prediction |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in document["results"]:
        for key, column in result["columns"].items():
            config = {"batchSize": 1024} if key == "whole_query" else result["tuned_cpu_config"]
            ratio = column["ratio"]
            lines.append(
                f"| {result['model']} | {result['target_ms']:g} | {LABELS[key]} | "
                f"{_config(config)} | {_range(column['predicted_qps'])} | "
                f"{_range(column['measured_qps'])} | {column['measured_qps']['spread_pct']:g}% | "
                f"{column['runs']} | {_range(ratio, 2) if ratio else 'n/a'} | "
                f"{column['rounds_within_tolerance']}/{column['runs']} | "
                f"{'**yes**' if column['within_tolerance'] else '**no**'} | "
                f"{_optional_range(column.get('ratio_blind'))} | "
                f"{_optional_range(column.get('ratio_mix_mean'))} |"
            )
    return lines


def _rounds_table(document: dict[str, Any]) -> list[str]:
    lines = [
        "| model | round | order | (b) predicted | (b) measured | (b) ratio | (c) predicted "
        "| (c) measured | (c) ratio | blind ratios (b), (c) | speed after / before "
        "| latency beyond the worker, ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in document["results"]:
        for record in result["rounds"]:
            cells = []
            for key in ("whole_query", "tuned_cpu"):
                ratio = record["measured_over_predicted"][key]
                cells += [
                    f"{record['predicted'][key]['qps']:.1f}",
                    f"{record['measured_qps'][key]:.1f}",
                    "n/a" if ratio is None else f"{ratio:.2f}",
                ]
            order = ", ".join("b" if key == "whole_query" else "c" for key in record["order"])
            blind = record.get("measured_over_blind", {})
            blind_cells = ", ".join(
                "n/a" if blind.get(key) is None else f"{blind[key]:.2f}"
                for key in ("whole_query", "tuned_cpu")
            )
            drift = record.get("speed_drift_1024")
            lines.append(
                f"| {result['model']} | {record['round']} | {order} | {' | '.join(cells)} | "
                f"{blind_cells} | {'n/a' if drift is None else f'{drift:.2f}'} | "
                f"{_extra_latency(record['calibration'])} |"
            )
    return lines


def _calibration_table(document: dict[str, Any]) -> list[str]:
    lines = [
        "| model | items | shipped profile forward ms | pod forward ms | pod / shipped "
        "| service ms (W / saturated QPS) | saturated QPS | lone latency ms "
        "| lone forward ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in document["results"]:
        rows_by_round = [record["calibration"]["rows"] for record in result["rounds"]]
        for index, first in enumerate(rows_by_round[0]):
            rows = [rows[index] for rows in rows_by_round]
            forward = statistics.median(row["pod_forward_ms"] for row in rows)
            service = [row["service_ms"] for row in rows]
            qps = statistics.median(row["saturated_qps"] for row in rows)
            lone = [
                f"{statistics.median(row[key] for row in rows):.2f}" if key in first else "n/a"
                for key in ("lone_ms", "lone_forward_ms")
            ]
            lines.append(
                f"| {result['model']} | {first['items']} | {first['shipped_forward_ms']:.2f} | "
                f"{forward:.2f} | {forward / first['shipped_forward_ms']:.2f} | "
                f"{statistics.median(service):.2f} ({min(service):.2f}-{max(service):.2f}) | "
                f"{qps:.1f} | {' | '.join(lone)} |"
            )
    return lines


def _trials(document: dict[str, Any]) -> str:
    trial = document.get("trial", {})
    repeats = (
        f", at least {trial['min_trials']} trials per rate (up to {trial['max_trials']} when "
        "they disagree; the median decides)"
        if "min_trials" in trial
        else ", one trial per rate unless it lies within 5% of the target"
    )
    return f"trials of {trial.get('trial_s', '?')} s after {trial.get('warmup_s', '?')} s{repeats}"


def _minutes(document: dict[str, Any]) -> str:
    """Run time; with models measured in separate holds (`--append`), their sum and the count."""
    runs = [result["run"] for result in document["results"] if "run" in result]
    if len(runs) < 2:
        return f"{document.get('minutes', '?')} min"
    total = sum(run["minutes"] for run in runs)
    return f"{total:.1f} min in {len(runs)} holds of the bench lock (one per model, below)"


def _runs(document: dict[str, Any]) -> list[str]:
    """One line per model measured in its own hold of the bench lock (`--append`)."""
    lines = [
        f"* {result['model']}: {run['date']}, load average {run['load_average_before'][0]} before, "
        f"{run['load_average_after'][0]} after, {run['minutes']} min, `{run['command']}` at "
        f"{run['commit']}."
        for result in document["results"]
        if (run := result.get("run"))
    ]
    return [*lines, ""] if lines else []


def render(document: dict[str, Any]) -> str:
    return "\n".join(
        [
            "# Simulator capacity checked on a real pod",
            "",
            header_line(document) + f" {_minutes(document)}. "
            f"Raw data: `docs/benchmarks/real_capacity.json`. One pod, scale 0.01, "
            f"{document['workers']} workers, binary protocol, `{document['sizes']}` size mix, "
            f"p95 target {document['target_multiple']:g}x round 1's calibrated time for a "
            "1024-item request. Each round: `recsched-loadtest sweep` searches (b) and (c) (order "
            "alternating) between two calibrations of the same pod; predicted from their mean "
            "(blind: from the one before alone). Speed after / before: the 1024-item service "
            "time before the round over the one after (above 1: the machine sped up). Method: "
            "docstring of `bench/real_capacity.py`; reading: docs/benchmarks.md. Searches: "
            f"{_trials(document)}.",
            "",
            *_runs(document),
            "## Measured against predicted, per column",
            "",
            *_summary_table(document),
            "",
            "## Per round",
            "",
            *_rounds_table(document),
            "",
            "## Calibration (medians over rounds)",
            "",
            *_calibration_table(document),
            "",
        ]
    )
