"""The plot of a scripted local run: p95 against the target, the two knobs, and offered against
measured QPS, on one time axis with the phases shaded and named."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recsched_operator.local.demo_summary import PhaseRecord, Series


def plot_demo(
    path: Path,
    title: str,
    summary: Mapping[str, Any],
    records: Sequence[PhaseRecord],
    series: Mapping[str, Series],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = records[0].start_s
    figure, (latency, knobs, load) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    for axis in (latency, knobs, load):
        for index, record in enumerate(records):
            if index % 2:
                axis.axvspan(record.start_s - t0, record.end_s - t0, color="0.93", zorder=0)
            axis.axvline(record.start_s - t0, color="0.6", linewidth=0.8, zorder=1)
    for record in records:
        latency.text(
            record.start_s - t0 + 1, 1.02, record.name, transform=latency.get_xaxis_transform(),
            fontsize=8, va="bottom",
        )  # fmt: skip
    p95 = series.get("p95_router_ms", [])
    if p95:
        latency.plot([t - t0 for t, _ in p95], [v for _, v in p95], label="p95 at the router")
    latency.step(
        [r.start_s - t0 for r in records] + [records[-1].end_s - t0],
        [r.target_ms for r in records] + [records[-1].target_ms],
        where="post", color="red", linestyle="--", label="target",
    )  # fmt: skip
    latency.set_yscale("log")
    latency.set_ylabel(f"p{summary['percentile']} ms ({summary['windowS']} s windows)")
    latency.legend(loc="upper right", fontsize=8)
    latency.set_title(title, fontsize=10, pad=16)
    for name, label, style in (
        ("batch_items", "batch size B (CPU pool)", "-"),
        ("threshold_items", f"offload threshold T (1025 = off; {summary['gpuPool']})", "--"),
    ):
        points = series.get(name, [])
        if points:
            knobs.step(
                [t - t0 for t, _ in points], [v for _, v in points], where="post", label=label,
                linestyle=style, linewidth=2,
            )  # fmt: skip
    knobs.set_yscale("log", base=2)
    knobs.set_ylim(1, 2**13)  # room above T's "off" (1025) for the legend
    knobs.set_ylabel("items")
    if knobs.lines:
        knobs.legend(loc="upper right", fontsize=8)
    load.step(
        [r.start_s - t0 for r in records] + [records[-1].end_s - t0],
        [r.offered_qps for r in records] + [records[-1].offered_qps],
        where="post", color="black", label="offered",
    )  # fmt: skip
    qps = series.get("qps", [])
    if qps:
        load.plot([t - t0 for t, _ in qps], [v for _, v in qps], label="served (10 s rate)")
    load.set_ylabel("queries/s")
    load.set_xlabel("seconds since load began")
    load.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
