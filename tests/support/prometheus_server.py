"""A real Prometheus for tests: started on a free loopback port in a temp dir, stopped after.

    with running_prometheus(targets=["127.0.0.1:8123"], labels={"recmodel": "m"}) as prom:
        prom.wait_for_targets_up(1)
        prom.wait_until('recsched_config_generation{recmodel="m"}')
        prom.set_targets(["127.0.0.1:8124"])          # file-based discovery, picked up at once
        print(prom.url)                               # for PrometheusSource / PrometheusConnect

Targets are given through file-based service discovery (the way local mode finds its pods), so a
test can add and remove targets while Prometheus runs; `static_targets` adds a static job, and
`extra_scrape_configs` anything else. The scrape interval is short (0.5 s by default) so rate
windows of a few seconds hold enough samples. Uses only the standard library to talk to it, so
tests that never import the operator can use it too. Skip a test with `requires_prometheus` when
the binary is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import waiting
from support.ports import free_port as free_port  # re-exported: tests import it from here

PROMETHEUS_BINARY = (
    os.environ.get("RECSCHED_PROMETHEUS_BIN") or shutil.which("prometheus") or "/usr/bin/prometheus"
)

requires_prometheus = pytest.mark.skipif(
    not Path(PROMETHEUS_BINARY).is_file(), reason=f"no Prometheus binary at {PROMETHEUS_BINARY}"
)


class PrometheusStartError(RuntimeError):
    """Prometheus did not become ready; the message carries the tail of its log."""


@dataclass
class PrometheusServer:
    """A running Prometheus; `url` is its base URL (http://127.0.0.1:PORT)."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    scrape_interval_s: float
    file_sd_path: Path
    log_path: Path
    _log_file: Any = field(repr=False, default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_targets(
        self,
        targets: Sequence[str],
        labels: Mapping[str, str] | None = None,
        groups: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Replace the file-discovered targets ("host:port") with their labels, atomically."""
        content = list(groups or [])
        if targets:
            content.append({"targets": list(targets), "labels": dict(labels or {})})
        temporary = self.file_sd_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(content))
        temporary.replace(self.file_sd_path)

    def api(
        self, path: str, params: Mapping[str, str] | None = None, timeout_s: float = 5.0
    ) -> Any:
        """GET /api/v1/<path> and return its `data` (raises on HTTP or API errors)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=timeout_s) as reply:
            body = json.load(reply)
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus API error: {body}")
        return body["data"]

    def query(self, expr: str, at_s: float | None = None) -> list[dict[str, Any]]:
        """Instant query; the result vector (list of {"metric", "value"})."""
        params = {"query": expr}
        if at_s is not None:
            params["time"] = f"{at_s:.3f}"
        result: list[dict[str, Any]] = self.api("query", params)["result"]
        return result

    def wait_until(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout_s: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll `expr` until `predicate(result)` holds (default: any series); return the result."""
        result: list[dict[str, Any]] = []

        def satisfied() -> bool:
            nonlocal result
            with contextlib.suppress(urllib.error.URLError, RuntimeError, OSError):
                result = self.query(expr)
                return predicate(result)
            return False

        try:
            waiting.wait_until(
                satisfied, timeout_s=timeout_s, interval_s=min(0.25, self.scrape_interval_s)
            )
        except AssertionError:
            message = f"{expr!r} did not satisfy the condition in {timeout_s} s: {result}"
            raise TimeoutError(message) from None
        return result

    def wait_for_targets_up(self, count: int, timeout_s: float = 30.0) -> None:
        """Wait until at least `count` targets have been scraped successfully."""
        self.wait_until("up == 1", lambda result: len(result) >= count, timeout_s=timeout_s)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _config(
    scrape_interval_s: float,
    file_sd_path: Path,
    static_targets: Sequence[str],
    static_labels: Mapping[str, str] | None,
    extra_scrape_configs: Sequence[Mapping[str, Any]],
    metrics_path: str,
) -> dict[str, Any]:
    interval = f"{round(scrape_interval_s * 1000)}ms"
    jobs: list[dict[str, Any]] = [
        {
            "job_name": "file-sd",
            "metrics_path": metrics_path,
            "file_sd_configs": [{"files": [str(file_sd_path)], "refresh_interval": "1s"}],
        }
    ]
    if static_targets:
        jobs.append(
            {
                "job_name": "static",
                "metrics_path": metrics_path,
                "static_configs": [
                    {"targets": list(static_targets), "labels": dict(static_labels or {})}
                ],
            }
        )
    jobs.extend(dict(job) for job in extra_scrape_configs)
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "scrape_configs": jobs,
    }


def start_prometheus(
    *,
    targets: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    static_targets: Sequence[str] = (),
    static_labels: Mapping[str, str] | None = None,
    extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
    scrape_interval_s: float = 0.5,
    metrics_path: str = "/metrics",
    workdir: Path | None = None,
    startup_timeout_s: float = 30.0,
    attempts: int = 3,
) -> PrometheusServer:
    """Start Prometheus and wait until it is ready. `targets` go through file-based discovery
    (change them later with `set_targets`); the JSON config is valid YAML, so no YAML writer."""
    if not Path(PROMETHEUS_BINARY).is_file():
        raise PrometheusStartError(f"no Prometheus binary at {PROMETHEUS_BINARY}")
    root = workdir or Path(tempfile.mkdtemp(prefix="recsched-prometheus-"))
    root.mkdir(parents=True, exist_ok=True)
    file_sd_path = root / "targets.json"
    config_path = root / "prometheus.yml"
    config = _config(
        scrape_interval_s,
        file_sd_path,
        static_targets,
        static_labels,
        extra_scrape_configs,
        metrics_path,
    )
    config_path.write_text(json.dumps(config, indent=1))
    last_error = ""
    for attempt in range(attempts):
        port = free_port()
        log_path = root / f"prometheus-{attempt}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [
                PROMETHEUS_BINARY,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
        server = PrometheusServer(
            port, root, process, scrape_interval_s, file_sd_path, log_path, log_file
        )
        server.set_targets(targets, labels)
        if _wait_ready(server, startup_timeout_s):
            return server
        last_error = server.log_tail()
        server.stop()
    raise PrometheusStartError(f"Prometheus did not become ready; log tail:\n{last_error}")


class _Exited(Exception):
    """Prometheus exited during start-up (stops the wait at once)."""


def _wait_ready(server: PrometheusServer, timeout_s: float) -> bool:
    def ready() -> bool:
        if server.process.poll() is not None:
            raise _Exited
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{server.url}/-/ready", timeout=1.0) as reply,
        ):
            return bool(reply.status == 200)
        return False

    try:
        waiting.wait_until(ready, timeout_s=timeout_s, interval_s=0.1)
    except (AssertionError, _Exited):
        return False
    return True


@contextlib.contextmanager
def running_prometheus(**kwargs: Any) -> Iterator[PrometheusServer]:
    """`start_prometheus(**kwargs)` for the duration of a `with` block."""
    server = start_prometheus(**kwargs)
    try:
        yield server
    finally:
        server.stop()
        if "workdir" not in kwargs:
            shutil.rmtree(server.workdir, ignore_errors=True)
