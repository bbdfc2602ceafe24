"""PNG plots of sweeps: capacity per config, and p95 against offered load (I/O, matplotlib Agg)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot
import matplotlib.pyplot as plt

from recsched_loadtest.sweep_plan import SweepPoint


def plot_capacity_vs_config(points: list[SweepPoint], target_ms: float, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(7, 4))
    labels = [point.config.label for point in points]
    capacities = [point.result.capacity_qps for point in points]
    axes.bar(range(len(points)), capacities, color="tab:blue")
    for index, point in enumerate(points):
        if point.result.hi_qps is not None and point.result.lo_qps is not None:
            axes.plot([index, index], [point.result.lo_qps, point.result.hi_qps], color="black")
    axes.set_xticks(range(len(points)), labels, rotation=30, ha="right")
    axes.set_ylabel("capacity (QPS)")
    axes.set_title(f"Latency-bounded throughput, p95 <= {target_ms:g} ms")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_p95_vs_offered(points: list[SweepPoint], target_ms: float, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(7, 4))
    for point in points:
        curve = [t for t in point.result.curve if math.isfinite(t.p95_ms) and not t.stopped_early]
        if not curve:
            continue
        axes.plot(
            [t.offered_qps for t in curve],
            [t.p95_ms for t in curve],
            marker="o",
            label=point.config.label,
        )
    axes.axhline(target_ms, color="red", linestyle="--", label=f"target {target_ms:g} ms")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("offered load (QPS)")
    axes.set_ylabel("p95 latency (ms)")
    axes.set_title("p95 vs offered load (trials that ran to the end)")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_sweep_plots(points: list[SweepPoint], target_ms: float, out_dir: Path) -> list[Path]:
    return [
        plot_capacity_vs_config(points, target_ms, out_dir / "capacity_vs_config.png"),
        plot_p95_vs_offered(points, target_ms, out_dir / "p95_vs_offered.png"),
    ]
