"""Start, watch and stop the processes of a local run: pods, router and Prometheus.

Every process binds 127.0.0.1 only and logs to `<run_dir>/logs/<name>.log`. Stopping sends
SIGTERM, waits, then SIGKILL, so nothing outlives the run.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from recsched_operator.errors import RecSchedOperatorError
from recsched_operator.local.plan import (
    LocalPlan,
    endpoints_document,
    file_sd_targets,
    prometheus_config,
)
from recsched_operator.recmodel.config_document import ConfigDocument

logger = logging.getLogger(__name__)


class LocalRunError(RecSchedOperatorError):
    """A local run could not start: a missing binary, a process that died or never got ready."""


def write_run_files(plan: LocalPlan, config: ConfigDocument) -> str:
    """Config document, admin token (new each run, never logged), endpoints, Prometheus files."""
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    (plan.run_dir / "logs").mkdir(exist_ok=True)
    write_atomically(plan.config_path, config.to_json())
    token = secrets.token_urlsafe(32)
    plan.token_path.write_text(token, encoding="utf-8")
    plan.token_path.chmod(0o600)
    write_atomically(plan.endpoints_path, json.dumps(endpoints_document(plan)))
    write_atomically(plan.run_dir / "targets.json", json.dumps(file_sd_targets(plan)))
    write_atomically(plan.run_dir / "prometheus.yml", prometheus_config(plan))
    return token


def write_atomically(path: Path, text: str) -> None:
    """Write then rename, so a watcher never reads half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def exit_message(name: str, code: int, log: Path, tail: str) -> str:
    """Why a process died, in one line when the cause is a known one (a busy port)."""
    lowered = tail.lower()
    if "address already in use" in lowered or "bind on address" in lowered:
        return (
            f"{name} could not bind its port (address already in use): another local run or "
            f"server holds it; stop that one (or wait a few seconds) and start again; log: {log}"
        )
    return f"{name} exited with code {code}; end of {log}:\n{tail}"


class LocalProcesses:
    """The running processes of one local run."""

    def __init__(self, plan: LocalPlan) -> None:
        self._plan = plan
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, prometheus_binary: str = "prometheus") -> None:
        binary = shutil.which(prometheus_binary)
        if binary is None:
            raise LocalRunError(
                f"{prometheus_binary} not found: install it with "
                "'apt-get install -y --no-install-recommends prometheus' (make setup does)"
            )
        plan = self._plan
        self._spawn(
            "prometheus",
            (
                binary,
                f"--config.file={plan.run_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={plan.run_dir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{plan.prometheus_port}",
                "--log.level=warn",
            ),
        )
        # Pods first: the router only reports ready once a CPU pod does.
        for process in sorted(plan.processes, key=lambda p: p.role == "router"):
            self._spawn(process.name, process.argv, process.env)

    def _spawn(
        self, name: str, argv: tuple[str, ...], env: tuple[tuple[str, str], ...] = ()
    ) -> None:
        log = (self._plan.run_dir / "logs" / f"{name}.log").open("ab")
        # A session of their own: Ctrl-C in the terminal reaches only the supervisor, which
        # still reads Prometheus for the report before it stops them in order.
        self._running[name] = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **dict(env)} if env else None,  # the container's env, if any
        )
        log.close()

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Until every pod, the router and Prometheus answer ready; fail fast if one dies."""
        urls = {p.name: p.base_url + "/v2/health/ready" for p in self._plan.processes}
        urls["prometheus"] = self._plan.prometheus_url + "/-/ready"
        deadline = time.monotonic() + timeout_s
        pending = dict(urls)
        while pending:
            for name, url in list(pending.items()):
                self.check_alive()
                try:
                    if httpx.get(url, timeout=1.0).status_code == 200:
                        del pending[name]
                except httpx.TransportError:
                    pass
            if pending and time.monotonic() > deadline:
                raise LocalRunError(f"not ready after {timeout_s:.0f} s: {', '.join(pending)}")
            if pending:
                time.sleep(0.2)

    def check_alive(self) -> None:
        for name, process in self._running.items():
            code = process.poll()
            if code is not None:
                log = self._plan.run_dir / "logs" / f"{name}.log"
                tail = log.read_text(encoding="utf-8", errors="replace")[-800:]
                raise LocalRunError(exit_message(name, code, log, tail))

    def stop(self, grace_s: float = 10.0) -> None:
        for process in self._running.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace_s
        for process in self._running.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._running.clear()
