"""One local run from a RecModel manifest: start everything, tune, optionally drive load, report.

`recsched-operator local MANIFEST` runs until Ctrl-C (or `--duration-s`); with `--load-qps` it
also runs `recsched-loadtest` against the front door for the whole run; with `--scenario demo` it
runs the scripted phases of `scenario.py` instead (what `make demo` does) and writes the phase
summary, report and plot of `demo_report.py`. Everything is stopped on the way out, whatever
happened; on Ctrl-C the report covers the run so far.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recsched_operator.errors import InvalidSpecError
from recsched_operator.local.dashboard_table import dashboard_section
from recsched_operator.local.plan import CONFIG_FILE, LocalPlan, plan_local_run
from recsched_operator.local.processes import LocalProcesses, LocalRunError, write_run_files
from recsched_operator.local.report import fetch_series, summarise, write_report
from recsched_operator.local.runner import LocalTuner, read_decisions
from recsched_operator.local.scenario import Phase
from recsched_operator.local.scenario_run import ManifestWatch, ScenarioRun
from recsched_operator.recmodel.api import RecModelSpec, parse_spec
from recsched_operator.recmodel.config_document import (
    ConfigDocument,
    ConfigDocumentError,
    initial_config,
    parse_config_document,
)
from recsched_operator.recmodel.naming import Owner

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalRunOptions:
    manifest: Path
    run_dir: Path
    duration_s: float | None = None
    load_qps: float | None = None
    load_sizes: str = "production"
    report_dir: Path | None = None
    resume: bool = False
    python: str = sys.executable
    gpu_profile: str | None = None
    phases: tuple[Phase, ...] = ()
    load_arrivals: str = "constant"


def load_spec(path: Path) -> RecModelSpec:
    return load_manifest(path)[1]


def load_manifest(path: Path) -> tuple[Owner, RecModelSpec]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise LocalRunError(f"cannot read manifest {path}: {error}") from error
    if not isinstance(document, dict) or document.get("kind") != "RecModel":
        raise LocalRunError(f"{path} is not a RecModel manifest (kind: RecModel)")
    metadata = document.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise LocalRunError(f"{path}: metadata.name is required")
    try:
        spec = parse_spec(document.get("spec") or {})
    except InvalidSpecError as error:
        raise LocalRunError(f"{path}: invalid spec: {error}") from error
    return Owner(name, str(metadata.get("namespace") or "default"), uid="local"), spec


def free_ports() -> Iterator[int]:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            yield int(probe.getsockname()[1])


def run_local(options: LocalRunOptions) -> Path | None:
    """Run until the duration ends or Ctrl-C; returns the report's path when one was written."""
    owner, spec = load_manifest(options.manifest)
    # Absolute: Prometheus resolves file_sd paths against its config file's folder, not the cwd.
    options = dataclasses.replace(options, run_dir=options.run_dir.resolve())
    served: ConfigDocument = initial_config(spec)
    raw_state: dict[str, Any] | None = None
    if options.resume:
        served, raw_state = _previous_run(options.run_dir, served)
    elif options.run_dir.exists():
        shutil.rmtree(options.run_dir)
    plan = plan_local_run(
        owner, spec, options.run_dir, free_ports(), options.python, options.gpu_profile
    )
    token = write_run_files(plan, served)
    if options.phases:
        return _run_scenario(plan, spec, options, served, token)
    processes = LocalProcesses(plan)
    load: subprocess.Popen[bytes] | None = None
    started_s = time.time()
    try:
        processes.start()
        processes.wait_ready()
        logger.info(
            "local run of %s ready: queries to %s/v2/models/%s/infer, Prometheus at %s",
            owner.name,
            plan.front_door.base_url,
            spec.model.name,
            plan.prometheus_url,
        )
        started_s = time.time()
        if options.load_qps is not None:
            load = _start_load(plan, spec, options)
        tuner = LocalTuner(plan, spec, served, token, raw_state=raw_state)
        _tune_until(tuner, processes, spec, options.duration_s, started_s)
        if load is not None:
            load.wait(timeout=60)
    except KeyboardInterrupt:
        logger.info("interrupted: stopping the local run")
    finally:
        if load is not None and load.poll() is None:
            load.terminate()
            load.wait(timeout=10)
        report = _report(plan, spec, options, started_s)
        processes.stop()
    return report


def _run_scenario(
    plan: LocalPlan,
    spec: RecModelSpec,
    options: LocalRunOptions,
    served: ConfigDocument,
    token: str,
) -> Path | None:
    """The scripted phases; the report is written whatever happened once load began."""
    from recsched_operator.local.demo_report import DemoContext, write_demo_report

    manifest = plan.run_dir / "recmodel.yaml"
    shutil.copyfile(options.manifest, manifest)
    processes = LocalProcesses(plan)
    tuner = LocalTuner(plan, spec, served, token)
    scenario = ScenarioRun(
        plan,
        tuner,
        processes,
        options.phases,
        ManifestWatch(manifest, load_spec),
        python=options.python,
        arrivals=options.load_arrivals,
    )
    try:
        processes.start()
        processes.wait_ready()
        logger.info(
            "local run of %s ready: queries to %s/v2/models/%s/infer, Prometheus at %s; "
            "edit %s to change the SLO while it runs",
            plan.owner.name,
            plan.front_door.base_url,
            spec.model.name,
            plan.prometheus_url,
            manifest,
        )
        scenario.run()
        scenario.finish_load()
    except KeyboardInterrupt:
        logger.info("interrupted: stopping the local run and writing the report so far")
        scenario.interrupted()
    finally:
        scenario.stop_load()
        report = None
        if scenario.records:
            context = DemoContext(
                plan=plan,
                spec=spec,
                start=(served.batch_size, served.offload_threshold),
                workers=served.workers,
                gpu_profile=options.gpu_profile,
                out_dir=options.report_dir or plan.run_dir / "report",
            )
            try:
                report = write_demo_report(
                    context, scenario.records, read_decisions(plan.decisions_path),
                    scenario.load_documents(),
                )  # fmt: skip
            except KeyboardInterrupt:
                logger.warning("interrupted again: no report")
        processes.stop()
    return report


def _previous_run(
    run_dir: Path, fallback: ConfigDocument
) -> tuple[ConfigDocument, dict[str, Any] | None]:
    config_path = run_dir / CONFIG_FILE
    try:
        served = parse_config_document(config_path.read_text(encoding="utf-8"), str(config_path))
        state = json.loads((run_dir / "tuning-state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, ConfigDocumentError):
        return fallback, None
    return served, state


def _start_load(
    plan: LocalPlan, spec: RecModelSpec, options: LocalRunOptions
) -> subprocess.Popen[bytes]:
    duration = options.duration_s or 3600.0
    argv = [
        options.python,
        "-m",
        "recsched_loadtest",
        "run",
        "--url",
        plan.front_door.base_url,
        "--model",
        spec.model.name,
        "--rate",
        f"{options.load_qps:g}",
        "--duration-s",
        f"{duration:g}",
        "--sizes",
        options.load_sizes,
        "--json",
        "--quiet",
    ]
    stdout = (plan.run_dir / "loadtest.json").open("wb")
    stderr = (plan.run_dir / "logs" / "loadtest.log").open("wb")
    logger.info("load: %g QPS, sizes %s, for %g s", options.load_qps, options.load_sizes, duration)
    return subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)


def _tune_until(
    tuner: LocalTuner,
    processes: LocalProcesses,
    spec: RecModelSpec,
    duration_s: float | None,
    started_s: float,
) -> None:
    interval_s = float(spec.tuning.interval_s)
    # The first decision waits for one full SLO window of traffic: an earlier one would judge a
    # window that is partly empty (the load was still starting).
    next_step_s = started_s + max(interval_s, float(spec.slo.window_s))
    while duration_s is None or time.time() < started_s + duration_s:
        time.sleep(max(0.0, min(next_step_s, started_s + (duration_s or 1e12)) - time.time()))
        if duration_s is not None and time.time() >= started_s + duration_s:
            break
        processes.check_alive()
        tuner.step()
        next_step_s += interval_s


def _report(
    plan: LocalPlan, spec: RecModelSpec, options: LocalRunOptions, started_s: float
) -> Path | None:
    decisions = read_decisions(plan.decisions_path)
    if not decisions:
        return None
    try:
        series = fetch_series(plan.prometheus_url, plan.owner.name, started_s, time.time())
    except Exception as error:  # the report is best effort: never hide the run's own outcome
        logger.warning("could not read the run's time series from Prometheus: %s", error)
        series = {}
    load = None
    load_path = plan.run_dir / "loadtest.json"
    if load_path.exists() and load_path.stat().st_size:
        try:
            load = json.loads(load_path.read_text(encoding="utf-8"))
        except ValueError:
            load = None
    out_dir = options.report_dir or plan.run_dir / "report"
    title = (
        f"Local run of {plan.owner.name}: {spec.model.name} scale {spec.model.scale:g}, "
        f"p{spec.slo.percentile} target {spec.slo.target_ms:g} ms"
    )
    dashboard = dashboard_section(plan.prometheus_url, plan.owner, started_s, time.time())
    report = write_report(
        out_dir, title, summarise(decisions, spec.slo.target_ms), decisions, series, load, dashboard
    )
    logger.info("report written to %s", report)
    return report
