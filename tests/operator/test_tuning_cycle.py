"""The one tuning cycle (`tuner.cycle.run_cycle`) and the two actuators that it drives.

A fake source and a fake actuator pin down the cycle's order (observe -> decide -> actuate ->
record) and its rules: only a changed `auto` decision is actuated, as the next generation of the
served document; a hold is recorded without actuating; an actuator that refuses (cannot write its
document of record) leaves the served config and the tuning state as they were. Then the same
cycle, with the same fake source, drives each real actuator: local mode's `LocalTuner` against
two fake processes (one refuses the push), and the cluster's `ClusterActuator` against a
recording API stub. The whole cluster path under kopf is `test_tuning_round_trip.py`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI, Header, HTTPException

from recsched_operator.local.plan import LocalPlan, ProcessPlan
from recsched_operator.local.runner import LocalTuner, read_decisions
from recsched_operator.recmodel.api import NO_OFFLOAD_THRESHOLD, parse_spec
from recsched_operator.recmodel.config_document import ConfigDocument
from recsched_operator.recmodel.naming import Owner
from recsched_operator.tuner.cycle import Applied, CycleRecord, next_config, run_cycle
from recsched_operator.tuner.observation import Observation
from recsched_operator.tuner.settings import SloTarget
from support.asgi_server import serve_app

OWNER = Owner("rm1", "ns1", "uid-1")
NOW = datetime.datetime(2026, 12, 3, 15, 0, tzinfo=datetime.UTC)
SERVED = ConfigDocument(
    generation=1, batch_size=32, offload_threshold=NO_OFFLOAD_THRESHOLD, workers=2
)
TOKEN = "cycle-token"


def spec(mode: str = "auto") -> Any:
    return parse_spec(
        {
            "model": {"name": "rmc1", "scale": 0.01, "image": "recsched-pod:test"},
            "slo": {"percentile": 95, "targetMs": 50, "windowSeconds": 10, "minSamples": 50},
            "pools": {"cpu": {"replicas": 1, "workers": 2}},
            "tuning": {
                "mode": mode,
                "intervalSeconds": 2,
                "cooldownSeconds": 0,
                "batchSize": {"min": 1, "max": 256, "initial": 32},
            },
        }
    )


def healthy(now_s: float, batch_items: int = 32) -> Observation:
    """Well under target at 40% use: the tuner's first move is to probe a smaller batch."""
    return Observation(
        at_s=now_s,
        qps=400.0,
        p95_ms=20.0,
        p99_ms=30.0,
        samples=4000,
        batch_size_items=batch_items,
        offload_threshold_items=NO_OFFLOAD_THRESHOLD,
        mean_query_items=69.0,
        window_s=10,
    )


class FakeSource:
    def __init__(self, log: list[str], *, error: str | None = None) -> None:
        self.log, self.error = log, error

    def observe(
        self, recmodel: str, namespace: str | None, slo: SloTarget, now_s: float
    ) -> Observation:
        self.log.append(f"observe {namespace}/{recmodel} over {slo.window_s:g} s")
        return Observation.failed(now_s, self.error) if self.error else healthy(now_s)


class FakeActuator:
    def __init__(self, log: list[str], *, refuse: bool = False) -> None:
        self.log, self.refuse = log, refuse
        self.applied: list[ConfigDocument] = []
        self.recorded: list[CycleRecord] = []

    async def apply(self, config: ConfigDocument) -> Applied:
        self.log.append(f"apply generation {config.generation}")
        if self.refuse:
            raise OSError("document of record not writable")
        self.applied.append(config)
        return Applied(config, acknowledged=1, total=2)

    async def record(self, cycle: CycleRecord) -> None:
        self.log.append(f"record {cycle.outcome.action}")
        self.recorded.append(cycle)


async def test_cycle_observes_decides_actuates_then_records_in_that_order() -> None:
    log: list[str] = []
    actuator = FakeActuator(log)
    cycle = await run_cycle(
        FakeSource(log), actuator, owner=OWNER, spec=spec(), served=SERVED, raw_state=None, now=NOW
    )
    assert log == ["observe ns1/rm1 over 10 s", "apply generation 2", "record probe"]
    outcome = cycle.outcome
    assert outcome.changed and (outcome.before_batch_items, outcome.after_batch_items) == (32, 16)
    expected = dataclasses.replace(SERVED, generation=2, batch_size=16)
    assert actuator.applied == [expected]  # workers and threshold carry over
    assert actuator.recorded == [cycle]
    assert cycle.served == expected and cycle.applied == Applied(expected, 1, 2)
    assert cycle.at == NOW and outcome.state["decisions"] == 1


async def test_a_hold_is_recorded_without_actuating() -> None:
    log: list[str] = []
    actuator = FakeActuator(log)
    cycle = await run_cycle(
        FakeSource(log, error="prometheus at http://127.0.0.1:9 failed"),
        actuator,
        owner=OWNER,
        spec=spec(),
        served=SERVED,
        raw_state=None,
        now=NOW,
    )
    assert log == ["observe ns1/rm1 over 10 s", "record hold"]
    assert cycle.applied is None and cycle.served == SERVED
    assert cycle.outcome.metrics_error == "prometheus at http://127.0.0.1:9 failed"


async def test_a_refused_apply_records_nothing_and_keeps_the_served_config() -> None:
    log: list[str] = []
    actuator = FakeActuator(log, refuse=True)
    with pytest.raises(OSError, match="not writable"):
        await run_cycle(
            FakeSource(log),
            actuator,
            owner=OWNER,
            spec=spec(),
            served=SERVED,
            raw_state=None,
            now=NOW,
        )
    assert log == ["observe ns1/rm1 over 10 s", "apply generation 2"]  # no record
    assert actuator.applied == [] and actuator.recorded == []


@pytest.mark.parametrize("mode", ["recommend", "off"])
async def test_only_auto_mode_turns_a_changed_decision_into_a_document(mode: str) -> None:
    cycle = await run_cycle(
        FakeSource([]),
        FakeActuator([]),
        owner=OWNER,
        spec=spec(),
        served=SERVED,
        raw_state=None,
        now=NOW,
    )
    assert next_config(cycle.outcome, SERVED, spec("auto")) == cycle.served
    assert next_config(cycle.outcome, SERVED, spec(mode)) is None


def test_both_shells_hand_the_cycle_their_own_actuator() -> None:
    """The daemon and the local runner differ only in what they pass to `run_cycle`."""
    from recsched_operator.local import runner
    from recsched_operator.reconcile import tuning_daemon

    assert runner.run_cycle is run_cycle and tuning_daemon.run_cycle is run_cycle
    assert tuning_daemon.ClusterActuator.__module__ == "recsched_operator.reconcile.actuator"
    assert runner.LocalActuator.__module__ == "recsched_operator.local.actuator"


def fake_process(token: str) -> FastAPI:
    """A pod's admin API: applies a pushed document only with `token`, reports what it serves."""
    app = FastAPI()
    served: dict[str, Any] = {"document": SERVED.to_json_dict()}

    @app.put("/admin/config")
    def put(document: dict[str, int], authorization: str = Header("")) -> dict[str, int]:
        if authorization != f"Bearer {token}":
            raise HTTPException(401, "bad token")
        served["document"] = document
        return document

    @app.get("/admin/config")
    def get() -> dict[str, int]:
        return dict(served["document"])

    return app


@pytest.fixture
def two_processes() -> Iterator[tuple[int, int]]:
    """One process that accepts the run's token and one that refuses every push."""
    with serve_app(fake_process(TOKEN)) as good, serve_app(fake_process("other")) as bad:
        yield int(good.rsplit(":", 1)[1]), int(bad.rsplit(":", 1)[1])


def test_local_tuner_runs_the_cycle_through_file_push_state_and_log(
    tmp_path: Path, two_processes: tuple[int, int], caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = two_processes
    processes = (ProcessPlan("cpu-0", "cpu", good, ()), ProcessPlan("cpu-1", "cpu", bad, ()))
    plan = LocalPlan(OWNER, tmp_path, processes, prometheus_port=9)
    log: list[str] = []
    tuner = LocalTuner(plan, spec(), SERVED, TOKEN, clock=NOW.timestamp, source=FakeSource(log))
    outcome = tuner.step()
    assert log == ["observe ns1/rm1 over 10 s"]
    assert outcome.changed and tuner.served == dataclasses.replace(
        SERVED, generation=2, batch_size=16
    )
    served = [httpx.get(f"http://127.0.0.1:{port}/admin/config").json() for port in (good, bad)]
    assert [document["generation"] for document in served] == [2, 1]
    assert "generation 2 push not acknowledged by cpu-1: PUT returned HTTP 401" in caplog.text
    # The file is the document of record: the refusing process re-reads it, so it counts as served.
    assert json.loads(plan.config_path.read_text()) == tuner.served.to_json_dict()
    assert json.loads(plan.state_path.read_text()) == tuner.raw_state == outcome.state
    [line] = read_decisions(plan.decisions_path)
    assert (line["generation"], line["action"], line["after_batch_items"]) == (2, "probe", 16)
    assert line["at"] == NOW.isoformat(timespec="milliseconds") and "state" not in line


def test_local_tuner_that_cannot_write_its_config_file_keeps_serving_the_old_one(
    tmp_path: Path,
) -> None:
    plan = LocalPlan(OWNER, tmp_path / "missing", (), prometheus_port=9)
    tuner = LocalTuner(plan, spec(), SERVED, TOKEN, clock=NOW.timestamp, source=FakeSource([]))
    with pytest.raises(OSError):
        tuner.step()
    assert tuner.served == SERVED and tuner.raw_state is None
    assert read_decisions(plan.decisions_path) == []


class RecordingKube:
    """The API calls the cluster actuator makes, in order; one Secret, no ready pods."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.configmap: dict[str, Any] = {}
        self.status: dict[str, Any] = {}

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(f"apply {obj['kind']}")
        self.configmap = obj
        return obj

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Any:
        self.calls.append(f"get {kind}")
        return {"data": {"token": base64.b64encode(TOKEN.encode()).decode()}}

    async def list(self, api_version: str, kind: str, namespace: str, **_: Any) -> list[Any]:
        self.calls.append(f"list {kind}")
        return []

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        self.calls.append(f"patch_status {kind}")
        self.status = status


async def test_cluster_actuator_writes_configmap_then_pushes_then_patches_status() -> None:
    from recsched_operator.metrics import OperatorMetrics
    from recsched_operator.reconcile.actuator import ClusterActuator
    from recsched_operator.reconcile.context import OperatorContext
    from recsched_operator.settings import OperatorSettings

    kube, events = RecordingKube(), []
    ctx = OperatorContext(OperatorSettings(), cast(Any, kube), OperatorMetrics())
    base = {"pools": {}, "conditions": [], "phase": "Deploying", "applied": {"generation": 1}}
    actuator = ClusterActuator(
        ctx,
        OWNER,
        spec(),
        lambda type_, reason, message: events.append((type_, reason)),
        previous_status={},
        base_status=base,
        generation=3,
    )
    cycle = await run_cycle(
        FakeSource([]), actuator, owner=OWNER, spec=spec(), served=SERVED, raw_state=None, now=NOW
    )
    assert kube.calls == ["apply ConfigMap", "get Secret", "list Pod", "patch_status RecModel"]
    assert json.loads(next(iter(kube.configmap["data"].values()))) == cycle.served.to_json_dict()
    status = kube.status
    assert (status["applied"]["generation"], status["applied"]["batchSize"]) == (2, 16)
    assert status["tuningState"] == cycle.outcome.state and status["history"][-1]["batchSize"] == 16
    assert status["phase"] == "Deploying"  # pools not ready: readiness wins over "Tuning"
    assert events == [("Normal", "TuningProbe")]  # no pod to push to: no push Event
    registry = ctx.metrics.registry
    labels = {"namespace": "ns1", "recmodel": "rm1"}
    assert registry.get_sample_value("recsched_tuner_config_generation", labels) == 2
    assert registry.get_sample_value("recsched_tuner_batch_size_items", labels) == 16
    decided = registry.get_sample_value(
        "recsched_tuner_decisions_total", {**labels, "action": "probe"}
    )
    assert decided == 1
