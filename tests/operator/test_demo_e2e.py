"""`make demo` end to end, shortened: the demo manifest's pods, router, Prometheus, phased load and
tuner on loopback; summary.json has every phase with its figures and both knobs moved; Ctrl-C
still writes the report so far and leaves nothing running.

Latency figures are not asserted (the machine is shared); the structure and the knobs are. A 50 s
run is too short for the search to reach the threshold after the batch size on its own (it tries
the batch first from this start), so once tuning begins the test edits the run's manifest copy as
a user would (`<run_dir>/recmodel.yaml`): offload bounds that exclude "off" make the tuner bring
the threshold into them, which also proves a live manifest edit reaches the tuner.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.waiting import wait_until

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "crds" / "examples" / "recmodel-local-demo.yaml"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus"),
]


def start_demo(tmp_path: Path, duration_s: float) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "recsched_operator", "local", str(EXAMPLE),
        "--scenario", "demo", "--duration-s", f"{duration_s:g}", "--load-qps", "8",
        "--gpu-profile", "nvidia-h200", "--run-dir", str(tmp_path / "run"),
        "--report-dir", str(tmp_path / "out"),
    ]  # fmt: skip
    log = (tmp_path / "demo.log").open("wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)


def ports_of(run_dir: Path) -> list[int]:
    endpoints = json.loads((run_dir / "endpoints.json").read_text(encoding="utf-8"))
    return [int(e.rsplit(":", 1)[1]) for pool in endpoints.values() for e in pool]


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for_log(demo: subprocess.Popen[bytes], log: Path, text: str, timeout_s: float) -> None:
    """Poll the demo's log for `text`; fail at once if the demo exits, or at the deadline."""

    def logged() -> bool:
        tail = log.read_text(errors="replace")
        if text in tail:
            return True
        if demo.poll() is not None:  # not retried: fails at once
            raise RuntimeError(f"the demo exited: {tail[-3000:]}")
        raise AssertionError(tail[-3000:])  # retried; at the deadline, the failure message

    wait_until(logged, timeout_s=timeout_s, interval_s=0.2)


def read_summary(tmp_path: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((tmp_path / "out" / "summary.json").read_text())
    return summary


@pytest.mark.timeout(180)
def test_short_demo_writes_a_summary_per_phase_and_moves_both_knobs(tmp_path: Path) -> None:
    demo = start_demo(tmp_path, duration_s=50)
    wait_for_log(demo, tmp_path / "demo.log", "phase steady", timeout_s=120)
    manifest = tmp_path / "run" / "recmodel.yaml"
    document = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    document["spec"]["tuning"]["offloadThreshold"] = {"min": 256, "max": 1024, "initial": 1024}
    manifest.write_text(yaml.safe_dump(document), encoding="utf-8")
    assert demo.wait(timeout=120) == 0, (tmp_path / "demo.log").read_text()[-3000:]
    summary = read_summary(tmp_path)
    phases = summary["phases"]
    assert [p["name"] for p in phases] == ["start config", "steady", "load step", "large queries"]
    for phase in phases:
        assert phase["completed"] is True
        for key in ("offeredQps", "targetMs", "servedBatchSize", "servedOffloadThreshold"):
            assert isinstance(phase[key], int | float), (key, phase)
        assert {"p95Ms", "phaseP95Ms", "sloAttainment", "decisions", "forecast"} <= set(phase)
        assert set(phase["startConfig"]) == {
            "measuredP95Ms",
            "measuredAtQps",
            "forecastCapacityQps",
        }
    assert phases[0]["decisions"] == 0 and phases[0]["tuning"] is False
    assert phases[0]["p95Ms"] is not None  # the start config's window was measured
    assert phases[2]["offeredQps"] == 12.0 and phases[3]["offeredQps"] == pytest.approx(7.2)
    assert summary["startConfig"] == {"batchSize": 4, "offloadThreshold": 1025}
    assert summary["knobsMoved"] == {"batchSize": True, "offloadThreshold": True}, (
        tmp_path / "run" / "decisions.jsonl"
    ).read_text()
    assert "EMULATED" in summary["gpuPool"]
    assert (tmp_path / "out" / "tuning.png").stat().st_size > 10_000
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Phases" in report
    # Both load processes (one per size mix) drained and wrote their summaries.
    assert "## Load process 0" in report and "## Load process 1" in report
    assert not any(port_is_open(port) for port in ports_of(tmp_path / "run"))


@pytest.mark.timeout(150)
def test_ctrl_c_stops_everything_and_still_writes_the_report_so_far(tmp_path: Path) -> None:
    demo = start_demo(tmp_path, duration_s=120)
    log = tmp_path / "demo.log"
    wait_for_log(demo, log, "phase steady", timeout_s=120)
    demo.send_signal(signal.SIGINT)  # what Ctrl-C sends the supervisor (its children have
    # sessions of their own, so the terminal's Ctrl-C reaches only it)
    assert demo.wait(timeout=60) == 0, log.read_text()[-3000:]
    summary = read_summary(tmp_path)
    assert summary["interrupted"] is True
    assert [p["name"] for p in summary["phases"]] == ["start config", "steady"]
    assert summary["phases"][0]["completed"] and not summary["phases"][1]["completed"]
    assert not any(port_is_open(port) for port in ports_of(tmp_path / "run"))
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "run")], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == "", leftovers.stdout
    assert os.path.exists(tmp_path / "out" / "report.md")
