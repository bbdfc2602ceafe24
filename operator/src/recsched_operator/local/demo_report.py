"""The report of a scripted local run: `summary.json`, `report.md` and `tuning.png`.

`write_demo_report` reads what it needs from the run's Prometheus after the fact (each phase's last
window as the tuner sees it, the whole phase's p95, the simulator's forecast calibrated on the last
window), then hands plain data to the pure parts: `demo_summary.summarise_phases` (the numbers),
`render_markdown` here (the text) and `demo_plot.plot_demo` (the picture).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsched_operator.local.dashboard_table import dashboard_section
from recsched_operator.local.demo_plot import plot_demo
from recsched_operator.local.demo_summary import PhaseMeasure, PhaseRecord, summarise_phases
from recsched_operator.local.forecasting import forecast_capacities, observe_window, phase_p95_ms
from recsched_operator.local.plan import LocalPlan
from recsched_operator.local.report import fetch_series
from recsched_operator.recmodel.api import RecModelSpec
from recsched_operator.tuner.knobs import KnobConfig, describe_threshold
from recsched_operator.tuner.settings import SloTarget
from recsched_operator.tuner.simulation.profiles import gpu_profile_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoContext:
    plan: LocalPlan
    spec: RecModelSpec
    start: tuple[int, int]
    workers: int
    gpu_profile: str | None
    out_dir: Path

    def device_label(self) -> str:
        gpu = self.spec.pools.gpu
        if gpu.replicas == 0:
            return "no GPU pool"
        if gpu.device == "emulated":
            profile = self.gpu_profile or "host CPU times / paper speedups"
            return f"{gpu.replicas} GPU pod(s), EMULATED ({profile} profile)"
        return f"{gpu.replicas} GPU pod(s), {gpu.device}"


def measure_phase(
    context: DemoContext, record: PhaseRecord, served: tuple[int, int]
) -> PhaseMeasure:
    """Prometheus' view of one phase and the simulator's forecast on its last window."""
    plan, spec = context.plan, context.spec
    slo = SloTarget(spec.slo.percentile, record.target_ms, float(spec.slo.window_s))
    observation = observe_window(plan.prometheus_url, plan.owner, slo, record.end_s)
    try:
        whole = phase_p95_ms(plan.prometheus_url, plan.owner, record.start_s, record.end_s)
    except Exception as error:  # best effort: a missing figure must not lose the report
        logger.warning("no whole-phase p95 for %s: %s", record.name, error)
        whole = None
    gpu = gpu_profile_path(context.gpu_profile) if context.gpu_profile else None
    forecast = (
        forecast_capacities(
            spec, observation, slo, KnobConfig(*served), KnobConfig(*context.start),
            context.workers, gpu,
        )
        if observation.error is None
        else {"error": observation.error}
    )  # fmt: skip
    return PhaseMeasure(
        observation.latency_ms(spec.slo.percentile), whole, observation.qps, forecast
    )


def write_demo_report(
    context: DemoContext,
    records: Sequence[PhaseRecord],
    decisions: Sequence[Mapping[str, Any]],
    load_documents: Sequence[Mapping[str, Any]],
) -> Path:
    from recsched_operator.local.demo_summary import served_at

    plan, spec = context.plan, context.spec
    measures = [
        measure_phase(context, record, served_at(decisions, context.start, record.end_s))
        for record in records
    ]
    try:
        series = fetch_series(
            plan.prometheus_url, plan.owner.name, records[0].start_s - 5, records[-1].end_s + 1
        )
    except Exception as error:  # best effort, as above
        logger.warning("could not read the run's time series from Prometheus: %s", error)
        series = {}
    p95_series = series.get("p95_router_ms") or series.get("p95_pods_ms") or []
    summary = summarise_phases(
        records, measures, decisions, p95_series, context.start,
        {
            "recmodel": plan.owner.name,
            "model": f"{spec.model.name} scale {spec.model.scale:g}",
            "cpuPool": f"{spec.pools.cpu.replicas} pod(s) x {context.workers} workers",
            "gpuPool": context.device_label(),
            "percentile": spec.slo.percentile,
            "windowS": spec.slo.window_s,
            "writtenAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )  # fmt: skip
    out = context.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    title = (
        f"{plan.owner.name}: {spec.model.name} scale {spec.model.scale:g}, "
        f"CPU pool + {context.device_label()}"
    )
    plot_demo(out / "tuning.png", title, summary, records, series)
    report = out / "report.md"
    dashboard = dashboard_section(
        plan.prometheus_url, plan.owner, records[0].start_s, records[-1].end_s
    )
    markdown = render_markdown(title, summary, decisions, load_documents, dashboard)
    report.write_text(markdown, encoding="utf-8")
    logger.info("report written to %s (summary.json, tuning.png beside it)", report)
    return report


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _config(batch: int, threshold: int) -> str:
    return f"B={batch}, T={describe_threshold(threshold)}"


def render_markdown(
    title: str,
    summary: Mapping[str, Any],
    decisions: Sequence[Mapping[str, Any]],
    load_documents: Sequence[Mapping[str, Any]],
    dashboard: Sequence[str] = (),
) -> str:
    start = summary["startConfig"]
    p = f"p{summary['percentile']}"
    lines = [
        f"# {title}",
        "",
        "![tuning](tuning.png)",
        "",
        f"* CPU pool: {summary['cpuPool']}; GPU pool: {summary['gpuPool']}.",
        f"* Starting config: {_config(start['batchSize'], start['offloadThreshold'])}; "
        f"{p} over {summary['windowS']} s windows at the router.",
        f"* Decisions: {summary['decisions']}; knobs moved: batch size "
        f"{'yes' if summary['knobsMoved']['batchSize'] else 'no'}, offload threshold "
        f"{'yes' if summary['knobsMoved']['offloadThreshold'] else 'no'}"
        + (
            "; **interrupted** (the report covers the run so far)" if summary["interrupted"] else ""
        ),
    ]
    if "EMULATED" in str(summary["gpuPool"]):
        lines.append(
            "* The GPU pool is **emulated**: a query completes after the GPU profile's time, but "
            "its scores are computed on this host's CPU, so it never finishes sooner than the "
            "host can compute it (the pods export the lag as `recsched_emulation_lag_seconds`)."
        )
    lines += [
        "",
        "## Phases",
        "",
        f"{p} is the last window of the phase (the config the tuner served at its end); "
        f"'phase {p}' covers every query of the phase, tuning included; attainment is the share "
        f"of the phase's sampled windows within target. The starting config was measured in the "
        f"first phase, before tuning began.",
        "",
        f"| phase | what | offered QPS | target ms | {p} ms | phase {p} ms | attainment "
        "| served | decisions (changes) | start config: measured ms / forecast QPS "
        "| served: forecast QPS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["phases"]:
        forecast = row["forecast"]
        served_capacity = (forecast.get("served") or {}).get("capacityQps")
        attain = row["sloAttainment"]
        name = row["name"] + ("" if row["completed"] else " (cut short)")
        lines.append(
            f"| {name} | {row['what']} | {row['offeredQps']:g} | {row['targetMs']:g} | "
            f"{_ms(row['p95Ms'])}{' ok' if row['metTarget'] else ' over'} | "
            f"{_ms(row['phaseP95Ms'])} | {'n/a' if attain is None else f'{attain:.0%}'} | "
            f"{_config(row['servedBatchSize'], row['servedOffloadThreshold'])} | "
            f"{row['decisions']} ({row['changes']}) | "
            f"{_ms(row['startConfig']['measuredP95Ms'])} / "
            f"{_ms(row['startConfig']['forecastCapacityQps'])} | {_ms(served_capacity)} |"
        )
    lines += [
        "",
        "## Simulator forecasts (recommend mode's calibration, each phase's last window)",
        "",
    ]
    for row in summary["phases"]:
        forecast = row["forecast"]
        if "error" in forecast:
            lines.append(f"* {row['name']}: no forecast ({forecast['error']})")
        else:
            served = (forecast.get("served") or {}).get("capacityQps")
            start = (forecast.get("start") or {}).get("capacityQps")
            lines.append(
                f"* {row['name']} at {_ms(forecast.get('atQps'))} QPS: served config "
                f"{_ms(served)} QPS capacity, starting config {_ms(start)} QPS "
                f"({forecast.get('calibration', '')}; GPU times: {forecast.get('gpuTimes', '')})"
            )
    for index, document in enumerate(load_documents):
        lines += [
            "",
            f"## Load process {index} (client side: {document.get('workload', '')})",
            "",
            f"achieved {document.get('achieved_qps')} QPS, {document.get('ok')} ok, errors "
            f"{document.get('errors')}, p50/p95/p99 "
            f"{_ms((document.get('latency') or {}).get('p50_ms'))}/"
            f"{_ms((document.get('latency') or {}).get('p95_ms'))}/"
            f"{_ms((document.get('latency') or {}).get('p99_ms'))} ms",
        ]
    lines += dashboard
    lines += [
        "",
        "## Decisions",
        "",
        f"| time | action | batch | threshold | {p} ms | QPS | reason |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in decisions:
        if d["action"] == "hold" and "cooldown" in str(d["reason"]):
            continue  # a hold while a change settles says nothing new
        qps = "" if d.get("qps") is None else f"{d['qps']:.0f}"
        lines.append(
            f"| {d['at'][11:19]} | {d['action']} | {d['before_batch_items']}->"
            f"{d['after_batch_items']} | {d['before_threshold_items']}->"
            f"{d['after_threshold_items']} | {_ms(d.get('p95_ms'))} | {qps} | "
            f"{str(d['reason']).replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"
