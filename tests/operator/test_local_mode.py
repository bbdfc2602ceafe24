"""Local mode end to end: a RecModel manifest becomes a router, a CPU pod and a real Prometheus on
loopback, the tuner steps on live metrics under load, a report is written, and everything stops."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from recsched_operator.local.session import LocalRunOptions, run_local

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus"),
]

MANIFEST = """
apiVersion: recsched.io/v1alpha1
kind: RecModel
metadata: {name: local-e2e, namespace: testing}
spec:
  model: {name: rmc1, scale: 0.001, image: unused}
  slo: {percentile: 95, targetMs: 40, windowSeconds: 10, minSamples: 20}
  pools:
    cpu: {replicas: 1, workers: 1}
  tuning:
    mode: auto
    intervalSeconds: 5
    cooldownSeconds: 0
    batchSize: {min: 4, max: 1024, initial: 1024}
"""


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_local_run_tunes_under_load_reports_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "recmodel.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run_dir = Path("run")  # relative, as `make demo` gives it: Prometheus must still find targets
    report = run_local(
        LocalRunOptions(
            manifest=manifest,
            run_dir=run_dir,
            duration_s=32,
            load_qps=15,
            load_sizes="lognormal:4.0,0.8",
            report_dir=tmp_path / "report",
        )
    )
    decisions = [
        json.loads(line)
        for line in (run_dir / "decisions.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(decisions) >= 4
    assert all(d["reason"] for d in decisions)
    measured = [d for d in decisions if d["p95_ms"] is not None]
    assert measured, decisions  # Prometheus scraped the pods and the tuner read a p95
    assert all(d["qps"] > 5 for d in measured)
    assert json.loads((run_dir / "config.json").read_text())["generation"] == 1 + sum(
        d["changed"] for d in decisions
    )
    assert report is not None and report.exists()
    text = report.read_text(encoding="utf-8")
    assert "local-e2e" in text and "## Decisions" in text
    # the cluster dashboard's own PromQL, run on the local Prometheus, shows the run's latency
    dashboard = text[text.index("## The cluster dashboard's panels") : text.index("## Decisions")]
    assert "| panel | series |" in dashboard and "p95" in dashboard.lower(), dashboard
    assert (tmp_path / "report" / "tuning.png").stat().st_size > 10_000
    load = json.loads((run_dir / "loadtest.json").read_text(encoding="utf-8"))
    assert load["ok"] > 200
    ports = [
        int(line.split(":")[-1].strip('"]'))
        for line in json.loads((run_dir / "endpoints.json").read_text())["cpu"]
    ]
    assert not any(port_is_open(port) for port in ports)
