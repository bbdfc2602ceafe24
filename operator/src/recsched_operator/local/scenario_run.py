"""Runs a scripted scenario (`scenario.py`) against a started local run.

Load comes from `recsched-loadtest run` processes, one per stretch of phases with the same size
mix (`scenario.load_runs`), each with its rate profile; the phase clock starts when the front door
has answered the first query, and a later load process is launched as long before its phase as the
first one took to send its first query, so a size-mix change leaves no gap. In tuned phases the
tuner steps once per tuning interval. The run's manifest copy (`<run_dir>/recmodel.yaml`) is
watched: an edit (by the scenario's SLO-edit phase, or by hand) is parsed and handed to the tuner at
its next step, as `kubectl apply` would. Ctrl-C ends the current phase where it stands; the records
say which phases completed.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from recsched_operator.local.demo_summary import PhaseRecord
from recsched_operator.local.plan import LocalPlan
from recsched_operator.local.processes import LocalProcesses, LocalRunError, write_atomically
from recsched_operator.local.runner import LocalTuner
from recsched_operator.local.scenario import LoadRun, Phase, TimedPhase, load_runs, timeline
from recsched_operator.recmodel.api import RecModelSpec

logger = logging.getLogger(__name__)

FIRST_QUERY_TIMEOUT_S = 60.0  # the load generator imports numpy and builds its tensor pool first


def load_argv(
    python: str, url: str, model: str, run: LoadRun, arrivals: str, seed: int
) -> list[str]:
    """The command line of one load process (stdout: its JSON summary)."""
    return [
        python, "-m", "recsched_loadtest", "run",
        "--url", url, "--model", model,
        "--profile", run.profile(), "--sizes", run.sizes, "--arrivals", arrivals,
        "--warmup-s", "0", "--seed", str(seed), "--json", "--quiet",
    ]  # fmt: skip


def edit_slo_target(manifest: Path, target_ms: float) -> None:
    """Rewrite the manifest with a new p95/p99 target, atomically (the watcher never reads half)."""
    document = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    document["spec"]["slo"]["targetMs"] = target_ms
    write_atomically(manifest, yaml.safe_dump(document, sort_keys=False))


class ManifestWatch:
    """Re-reads the run's manifest when its modification time changes."""

    def __init__(self, path: Path, load: Callable[[Path], RecModelSpec]) -> None:
        self._path = path
        self._load = load
        self._mtime_ns = path.stat().st_mtime_ns

    def changed_spec(self) -> RecModelSpec | None:
        mtime_ns = self._path.stat().st_mtime_ns
        if mtime_ns == self._mtime_ns:
            return None
        self._mtime_ns = mtime_ns
        try:
            return self._load(self._path)
        except LocalRunError as error:
            logger.warning("manifest edit ignored: %s", error)
            return None


def served_queries(router_url: str) -> float:
    """Queries the router has answered (its duration histogram's count, all pools)."""
    try:
        text = httpx.get(router_url + "/metrics", timeout=2.0).text
    except httpx.TransportError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("recsched_router_query_duration_seconds_count")
    )


class ScenarioRun:
    """One pass through the phases; `records` holds the phases begun so far."""

    def __init__(
        self,
        plan: LocalPlan,
        tuner: LocalTuner,
        processes: LocalProcesses,
        phases: Sequence[Phase],
        watch: ManifestWatch,
        *,
        python: str,
        arrivals: str = "constant",
    ) -> None:
        self._plan = plan
        self._tuner = tuner
        self._processes = processes
        self._timed = timeline(phases)
        self._runs = load_runs(phases)
        self._watch = watch
        self._python = python
        self._arrivals = arrivals
        self.records: list[PhaseRecord] = []
        self.load_processes: list[subprocess.Popen[bytes]] = []

    def run(self) -> None:
        started = self._launch(0)
        t0 = self._wait_first_query(started)
        logger.info("load began %.1f s after launch; phases follow", t0 - started)
        # A later process starts faster (its imports are cached): launch it at most this early.
        lead_s = 0.7 * max(0.0, t0 - started)
        next_run = 1
        step_at: float | None = None
        for index, timed in enumerate(self._timed):
            self._begin(timed, t0)
            end_s = t0 + timed.end_s
            while (now := time.time()) < end_s:
                if next_run < len(self._runs) and now >= t0 + self._runs[next_run].start_s - lead_s:
                    self._launch(next_run)
                    next_run += 1
                if timed.phase.tuning:
                    step_at = step_at or now
                    if now >= step_at:
                        self._step()
                        step_at += float(self._tuner.spec.tuning.interval_s)
                wake = min(end_s, step_at if timed.phase.tuning and step_at else end_s)
                if next_run < len(self._runs):
                    wake = min(wake, t0 + self._runs[next_run].start_s - lead_s)
                time.sleep(max(0.05, min(wake - time.time(), 1.0)))
            # The scheduled end, so phases tile the run and a decision belongs to one phase.
            self.records[index] = self._record(timed, t0, end_s, completed=True)

    def interrupted(self) -> None:
        """Mark the phase in progress as cut short (called on Ctrl-C)."""
        if self.records and self.records[-1].completed:
            return
        if self.records:
            last = self.records[-1]
            self.records[-1] = PhaseRecord(
                last.name, last.what, last.start_s, time.time(), last.offered_qps, last.sizes,
                last.target_ms, last.tuning, completed=False,
            )  # fmt: skip

    def finish_load(self, timeout_s: float = 15.0) -> None:
        """After the last phase: let each load process drain and write its summary (a process
        launched early ends a little after the phases do), then stop what is left."""
        deadline = time.monotonic() + timeout_s
        for process in self.load_processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                break
        self.stop_load()

    def stop_load(self) -> None:
        for process in self.load_processes:
            if process.poll() is None:
                process.terminate()
        for process in self.load_processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def load_documents(self) -> list[dict[str, Any]]:
        """The load processes' JSON summaries (those that finished and wrote one)."""
        import json

        documents = []
        for index in range(len(self.load_processes)):
            path = self._plan.run_dir / f"loadtest-{index}.json"
            try:
                documents.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return documents

    def _begin(self, timed: TimedPhase, t0: float) -> None:
        phase = timed.phase
        if phase.target_ms is not None:
            edit_slo_target(self._plan.run_dir / "recmodel.yaml", phase.target_ms)
            self._apply_manifest_edit()
        logger.info(
            "phase %s: %s (%g QPS, sizes %s, %g s)",
            phase.name, phase.what, phase.qps, phase.sizes, phase.duration_s,
        )  # fmt: skip
        self.records.append(self._record(timed, t0, time.time(), completed=False))

    def _record(self, timed: TimedPhase, t0: float, end_s: float, completed: bool) -> PhaseRecord:
        phase = timed.phase
        start_s = t0 + timed.start_s
        return PhaseRecord(
            phase.name, phase.what, start_s, max(end_s, start_s), phase.qps, phase.sizes,
            self._tuner.spec.slo.target_ms, phase.tuning, completed=completed,
        )  # fmt: skip

    def _apply_manifest_edit(self) -> None:
        spec = self._watch.changed_spec()
        if spec is not None:
            before = self._tuner.spec.slo
            self._tuner.spec = spec
            logger.info(
                "manifest edited: p%d target %g -> p%d target %g ms",
                before.percentile, before.target_ms, spec.slo.percentile, spec.slo.target_ms,
            )  # fmt: skip

    def _step(self) -> None:
        self._processes.check_alive()
        self._apply_manifest_edit()
        self._tuner.step()

    def _launch(self, index: int) -> float:
        run = self._runs[index]
        argv = load_argv(
            self._python, self._plan.front_door.base_url, self._tuner.spec.model.name, run,
            self._arrivals, seed=index + 1,
        )  # fmt: skip
        stdout = (self._plan.run_dir / f"loadtest-{index}.json").open("wb")
        stderr = (self._plan.run_dir / "logs" / f"loadtest-{index}.log").open("wb")
        self.load_processes.append(
            subprocess.Popen(
                argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, start_new_session=True
            )
        )
        stdout.close()
        stderr.close()
        logger.info("load %d: %s, sizes %s", index, run.profile(), run.sizes)
        return time.time()

    def _wait_first_query(self, launched_s: float) -> float:
        deadline = launched_s + FIRST_QUERY_TIMEOUT_S
        while served_queries(self._plan.front_door.base_url) <= 0:
            self._processes.check_alive()
            code = self.load_processes[0].poll()
            if code is not None:
                log = self._plan.run_dir / "logs" / "loadtest-0.log"
                raise LocalRunError(f"the load generator exited with code {code}; see {log}")
            if time.time() > deadline:
                raise LocalRunError(
                    f"no query answered {FIRST_QUERY_TIMEOUT_S:g} s after load began"
                )
            time.sleep(0.1)
        return time.time()
