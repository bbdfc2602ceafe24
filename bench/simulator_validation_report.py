"""Tables of docs/benchmarks/simulator_validation.md from the document
`bench/simulator_validation.py` writes (pure). What the columns mean is its docstring; what the
figures say is written in docs/benchmarks/tuner.md."""

from __future__ import annotations

from typing import Any

from harness import header_line

TITLE = "# Simulator validation against a real pod"


def _run_line(document: dict[str, Any]) -> str:
    if "commit" in document:
        return header_line(document)
    # Runs recorded before bench/harness.py (their JSON names these fields differently).
    return (
        f"Command: `{document['command']}` on {document['machine']} at "
        f"{document['measured_at']} (1-minute load average {document['load_average_1m']})."
    )


def render(document: dict[str, Any]) -> str:
    """The report's tables for one run."""
    lines = [
        TITLE,
        "",
        _run_line(document) + " Raw data: `docs/benchmarks/simulator_validation.json`. Method "
        "and columns: the docstring of `bench/simulator_validation.py` (one pod at scale 0.01, "
        "the paper's lognormal(5.1, 0.2) sizes, Poisson load from `recsched-loadtest run`, "
        "loads as fractions of the calibrated work bound).",
        "",
        "| model | factor (compute only) | per-query cost (ms) | load | rate (qps) | measured p95 "
        "(ms) | simulated p95 (ms) | error | capacity factor (qps) | capacity-calibrated p95 "
        "(ms) | error | speed vs calibration | drift-corrected p95 (ms) | error | uncalibrated "
        "simulation (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in document["results"]:
        for row in result["rows"]:
            by_capacity = row.get("capacity_calibrated_p95_ms")
            capacity_cells = (
                " | | "
                if by_capacity is None
                else f" {result['capacity_factor']:.2f} ({result['measured_capacity_qps']:.0f}) "
                f"| {by_capacity:.1f} | {by_capacity / row['measured_p95_ms'] - 1:+.1%} "
            )
            lines.append(
                f"| {result['model']} | {result['worker_factor']:.2f} "
                f"({result['compute_factor']:.2f}) | "
                f"{result['query_overhead_ms']:.1f} | {row['load_fraction']:.0%} | "
                f"{row['rate_qps']:.1f} | {row['measured_p95_ms']:.1f} | "
                f"{row['simulated_p95_ms']:.1f} | {row['error']:+.1%} |{capacity_cells}| "
                f"{drift_cells(row)}{row['uncalibrated_simulated_p95_ms']:.1f} |"
            )
    rows = [row for result in document["results"] for row in result["rows"]]
    within = sum(abs(row["error"]) <= 0.15 for row in rows)
    by_capacity_rows = [row for row in rows if "capacity_calibrated_p95_ms" in row]
    within_capacity = sum(
        abs(row["capacity_calibrated_p95_ms"] / row["measured_p95_ms"] - 1) <= 0.15
        for row in by_capacity_rows
    )
    corrected_rows = [row for row in rows if "drift_corrected_p95_ms" in row]
    within_corrected = sum(
        abs(row["drift_corrected_p95_ms"] / row["measured_p95_ms"] - 1) <= 0.15
        for row in corrected_rows
    )
    lines += [
        "",
        f"Within 15% of the measured p95: {within} of {len(rows)} points (fitted factor); "
        f"{within_capacity} of {len(by_capacity_rows)} (capacity-calibrated); "
        f"{within_corrected} of {len(corrected_rows)} (fitted, drift-corrected).",
    ]
    return "\n".join(lines + operating_table(document)) + "\n"


def drift_cells(row: dict[str, Any]) -> str:
    corrected = row.get("drift_corrected_p95_ms")
    if corrected is None:
        return "| | | "
    return (
        f"{row['pod_compute_vs_calibration']:.2f} | {corrected:.1f} | "
        f"{corrected / row['measured_p95_ms'] - 1:+.1%} | "
    )


def operating_table(document: dict[str, Any]) -> list[str]:
    """The fourth calibration: the fitted one with the compute speed of a run at an operating
    load that is not predicted. Blind to the runs it predicts."""
    results = [r for r in document["results"] if "operating_speed_vs_calibration" in r]
    if not results:
        return []
    lines = [
        "",
        "Fourth, blind to the runs it predicts: the fitted calibration with the pod's compute "
        "speed in one more run at an operating load that is not predicted (its share of the "
        "work bound, rate and p95 shown), over its speed at calibration.",
        "",
        "| model | operating run: load, rate (qps), p95 (ms) | its speed vs calibration | load "
        "| measured p95 (ms) | p95 calibrated at the operating run (ms) | error |",
        "|---|---|---|---|---|---|---|",
    ]
    within = total = 0
    for result in results:
        run = (
            f"{result['operating_load_fraction']:.0%}, {result['operating_qps']:.1f}, "
            f"{result['operating_measured_p95_ms']:.1f}"
        )
        for row in result["rows"]:
            predicted, measured = row["operating_calibrated_p95_ms"], row["measured_p95_ms"]
            error = predicted / measured - 1
            within += abs(error) <= 0.15
            total += 1
            lines.append(
                f"| {result['model']} | {run} | {result['operating_speed_vs_calibration']:.2f} | "
                f"{row['load_fraction']:.0%} | {measured:.1f} | {predicted:.1f} | {error:+.1%} |"
            )
    lines += ["", f"Within 15% (calibrated at the operating run): {within} of {total}."]
    return lines
