"""The report of a local run: what the tuner decided and what latency did, as Markdown and PNG.

`summarise` is pure (decisions and time series in, numbers out); `fetch_series` reads the run's
Prometheus; `write_report` renders both. Every number in the report comes from the run itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_api_client import PrometheusConnect

Series = list[tuple[float, float]]  # (unix seconds, value)


@dataclass(frozen=True)
class RunSummary:
    decisions: int
    changes: int
    first_p95_ms: float | None
    last_p95_ms: float | None
    best_p95_ms: float | None
    target_ms: float
    initial_batch_items: int | None
    final_batch_items: int | None
    final_threshold_items: int | None

    @property
    def p95_drop_fraction(self) -> float | None:
        if not self.first_p95_ms or self.last_p95_ms is None:
            return None
        return 1.0 - self.last_p95_ms / self.first_p95_ms


def summarise(decisions: Sequence[Mapping[str, Any]], target_ms: float) -> RunSummary:
    measured = [d["p95_ms"] for d in decisions if d.get("p95_ms") is not None]
    return RunSummary(
        decisions=len(decisions),
        changes=sum(1 for d in decisions if d.get("changed")),
        first_p95_ms=measured[0] if measured else None,
        last_p95_ms=measured[-1] if measured else None,
        best_p95_ms=min(measured) if measured else None,
        target_ms=target_ms,
        initial_batch_items=decisions[0]["before_batch_items"] if decisions else None,
        final_batch_items=decisions[-1]["after_batch_items"] if decisions else None,
        final_threshold_items=decisions[-1]["after_threshold_items"] if decisions else None,
    )


def fetch_series(
    prometheus_url: str, recmodel: str, start_s: float, end_s: float
) -> dict[str, Series]:
    """p95 end to end (router, else pods) over 10 s windows, and the knobs the pods served."""
    client = PrometheusConnect(url=prometheus_url, disable_ssl=True)
    sel = f'recmodel="{recmodel}"'
    queries = {
        "p95_router_ms": "1000 * histogram_quantile(0.95, sum by (le) "
        f"(rate(recsched_router_query_duration_seconds_bucket{{{sel}}}[10s])))",
        "p95_pods_ms": "1000 * histogram_quantile(0.95, sum by (le) "
        f"(rate(recsched_query_duration_seconds_bucket{{{sel}}}[10s])))",
        "qps": f'sum(rate(recsched_query_items_count{{{sel},pool!="router"}}[10s]))',
        "batch_items": f'max(recsched_batch_size_items{{{sel},pool="cpu"}})',
        "threshold_items": f"max(recsched_offload_threshold_items{{{sel}}})",
    }
    series: dict[str, Series] = {}
    for name, query in queries.items():
        result = client.custom_query_range(
            query, start_time=_dt(start_s), end_time=_dt(end_s), step="2"
        )
        points = result[0]["values"] if result else []
        series[name] = [(float(t), float(v)) for t, v in points if math.isfinite(float(v))]
    return series


def _dt(seconds: float) -> Any:
    import datetime

    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def write_report(
    out_dir: Path,
    title: str,
    summary: RunSummary,
    decisions: Sequence[Mapping[str, Any]],
    series: Mapping[str, Series],
    load: Mapping[str, Any] | None,
    dashboard: Sequence[str] = (),
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = out_dir / "tuning.png"
    _plot(plot, title, summary, decisions, series)
    lines = [f"# {title}", "", "![tuning](tuning.png)", "", "## Summary", ""]
    lines += [
        f"* decisions: {summary.decisions}, config changes: {summary.changes}",
        f"* p95 target: {summary.target_ms:g} ms",
        f"* p95 at the first measured window: {_ms(summary.first_p95_ms)}, at the last: "
        f"{_ms(summary.last_p95_ms)}, best: {_ms(summary.best_p95_ms)}"
        + (
            f" ({summary.p95_drop_fraction:.0%} lower at the end)"
            if summary.p95_drop_fraction is not None
            else ""
        ),
        f"* batch size {summary.initial_batch_items} -> {summary.final_batch_items} items, "
        f"offload threshold at the end {summary.final_threshold_items} items",
    ]
    if load:
        lines += [
            "",
            "## Load test (end to end at the front door, whole run)",
            "",
            "```json",
            json.dumps(load, indent=1)[:4000],
            "```",
        ]
    lines += dashboard
    lines += [
        "",
        "## Decisions",
        "",
        "| time | action | batch | threshold | p95 ms | QPS | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in decisions:
        qps = "" if d.get("qps") is None else f"{d['qps']:.0f}"
        lines.append(
            f"| {d['at'][11:19]} | {d['action']} | {d['before_batch_items']}->"
            f"{d['after_batch_items']} | {d['before_threshold_items']}->"
            f"{d['after_threshold_items']} | {_ms(d.get('p95_ms'))} | "
            f"{qps} | "
            f"{str(d['reason']).replace('|', '/')} |"
        )
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _plot(
    path: Path,
    title: str,
    summary: RunSummary,
    decisions: Sequence[Mapping[str, Any]],
    series: Mapping[str, Series],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = min((points[0][0] for points in series.values() if points), default=0.0)
    figure, (latency, knobs) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for name, label in (("p95_router_ms", "p95 at the router"), ("p95_pods_ms", "p95 in the pods")):
        points = series.get(name, [])
        if points:
            latency.plot([t - start for t, _ in points], [v for _, v in points], label=label)
    latency.axhline(summary.target_ms, color="red", linestyle="--", label="target")
    latency.set_ylabel("ms (10 s windows)")
    latency.set_yscale("log")
    latency.legend(loc="upper right")  # the target line always has a label
    latency.set_title(title)
    for name, label in (
        ("batch_items", "batch size B"),
        ("threshold_items", "offload threshold T"),
    ):
        points = series.get(name, [])
        if points:
            knobs.step(
                [t - start for t, _ in points], [v for _, v in points], where="post", label=label
            )
    knobs.set_yscale("log", base=2)
    knobs.set_ylabel("items")
    knobs.set_xlabel("seconds since start")
    if knobs.lines:
        knobs.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
