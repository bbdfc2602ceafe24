"""Terminal output: rich progress bars, the live summary line, result tables (I/O).

Everything goes to stderr except the result tables, so `--json` keeps stdout machine-readable.
Progress is redrawn from the driver's monitor callback (every 0.25 s) instead of rich's refresh
thread, so drawing never competes with the sender for the GIL at unexpected moments.
"""

from __future__ import annotations

import math
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from recsched_loadtest.capacity_search import CapacityResult, RepeatSummary, TrialPoint
from recsched_loadtest.driver import LiveCounts
from recsched_loadtest.stats import RunSummary


def _ms(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.1f}"


def summary_line(counts: LiveCounts) -> str:
    return (
        f"t={counts.elapsed_s:5.1f}s sent {counts.sent} done {counts.completed} "
        f"in-flight {counts.in_flight} errors {counts.errors} "
        f"p95(recent) {_ms(counts.recent_p95_ms)} ms"
    )


class LiveProgress:
    """One progress bar (queries sent of planned) plus the live summary line."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self._enabled = enabled
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[line]}"),
            console=console,
            auto_refresh=False,
            transient=False,
            disable=not enabled,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def begin(self, description: str, planned: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=planned, line="")

    def live(self, counts: LiveCounts) -> None:
        if self._task is None or not self._enabled:
            return
        self._progress.update(self._task, completed=counts.sent, line=summary_line(counts))
        self._progress.refresh()

    def watch(self, counts: LiveCounts) -> bool:
        """A driver monitor that only displays: it never stops the run."""
        self.live(counts)
        return False

    def note(self, text: str) -> None:
        if self._enabled:
            self._progress.console.print(text)


class CapacityReporter:
    """Adapts `LiveProgress` to the capacity search's `TrialReporter` protocol."""

    def __init__(self, progress: LiveProgress, label: str = "") -> None:
        self._progress = progress
        self._label = f"{label} " if label else ""

    def trial_started(self, number: int, rate_qps: float, queries: int) -> None:
        self._progress.begin(f"{self._label}trial {number} @ {rate_qps:.4g} QPS", queries)

    def live(self, counts: LiveCounts) -> None:
        self._progress.live(counts)

    def trial_finished(self, point: TrialPoint) -> None:
        verdict = (
            "pass" if point.passed else ("fail (stopped early)" if point.stopped_early else "fail")
        )
        self._progress.note(
            f"  {self._label}{point.offered_qps:8.4g} QPS offered, "
            f"{point.achieved_qps:8.4g} achieved, p95 {_ms(point.p95_ms)} ms, "
            f"errors {100 * point.error_ratio:.2f}% -> {verdict}"
        )


def print_run_summary(console: Console, summary: RunSummary, title: str) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(
        "offered / scheduled QPS", f"{summary.offered_qps:.4g} / {summary.scheduled_qps:.4g}"
    )
    table.add_row("achieved QPS", f"{summary.achieved_qps:.4g}")
    table.add_row("queries (window) / ok", f"{summary.queries} / {summary.ok}")
    latency = summary.latency
    if latency is not None:
        for name, value in (
            ("p50", latency.p50_ms),
            ("p90", latency.p90_ms),
            ("p95", latency.p95_ms),
            ("p99", latency.p99_ms),
            ("p99.9", latency.p999_ms),
            ("max", latency.max_ms),
        ):
            table.add_row(f"latency {name} (ms)", _ms(value))
    table.add_row("errors", ", ".join(f"{k}={v}" for k, v in summary.errors.items()) or "none")
    if summary.warmup_errors:
        table.add_row(
            "warm-up errors", ", ".join(f"{k}={v}" for k, v in summary.warmup_errors.items())
        )
    table.add_row("error ratio", f"{100 * summary.error_ratio:.2f}%")
    table.add_row("client send lag p99 (ms)", _ms(summary.send_lag_p99_ms))
    table.add_row("mean query size (items)", f"{summary.mean_items:.1f}")
    console.print(table)


def print_capacity_curve(
    console: Console, result: CapacityResult, target_ms: float, title: str
) -> None:
    table = Table(title=title)
    for column in (
        "offered QPS",
        "achieved QPS",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors %",
        "verdict",
    ):
        table.add_column(column, justify="right")
    for point in result.curve:
        verdict = "pass" if point.passed else "FAIL"
        if point.stopped_early:
            verdict += " (early)"
        table.add_row(
            f"{point.offered_qps:.4g}",
            f"{point.achieved_qps:.4g}",
            _ms(point.p50_ms),
            _ms(point.p95_ms) + (" (>=)" if point.stopped_early else ""),
            _ms(point.p99_ms),
            f"{100 * point.error_ratio:.2f}",
            verdict,
        )
    console.print(table)
    console.print(
        f"capacity at p95 <= {target_ms:g} ms: [bold]{result.capacity_qps:.4g} QPS[/bold] "
        f"({result.reason})"
    )


def print_repeat_summary(console: Console, summary: RepeatSummary, target_ms: float) -> None:
    values = ", ".join(f"{value:.4g}" for value in summary.capacities_qps)
    console.print(
        f"capacity at p95 <= {target_ms:g} ms over {len(summary.capacities_qps)} searches: "
        f"[bold]median {summary.median_qps:.4g} QPS[/bold], min {summary.min_qps:.4g}, "
        f"max {summary.max_qps:.4g}, spread {summary.spread_pct:.1f}% of the median ({values})"
    )
