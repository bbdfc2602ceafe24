"""One tuning cycle: observe -> decide -> build the next config document -> actuate -> record.

Cluster and local mode run this same function; they differ only in the two objects they pass in:

* an `ObservationSource` (what the tuner sees): `PrometheusSource` in both modes today, pointed at
  the cluster's Prometheus or the local run's; tests pass a fake;
* an `Actuator` (how a decision reaches the pods and where it is recorded):
  `reconcile.actuator.ClusterActuator` (ConfigMap + push + RecModel status + Events + operator
  metrics) or `local.actuator.LocalActuator` (config file + push + state file + decisions log).

The cycle owns the order of the steps and the one rule both modes share: only a changed decision
in `auto` mode is actuated, as the served document with the next generation and the new knobs.
It knows nothing of Kubernetes, files or HTTP, so those stay in the two shells. Observing and
deciding run in a worker thread, because the Prometheus client blocks (it uses requests) and a
`recommend` decision runs the simulator, while the cycle itself runs on the operator's event loop
in a cluster.

An actuator that cannot write its document of record raises from `apply`; the cycle then records
nothing, so the served config and the stored tuning state stay as they were and the next cycle
decides again from them (the cluster daemon reports the error and backs off). A push that some
pods miss is not a refusal: the document of record changed and those pods re-read it, so it is
recorded with its acknowledged and total counts.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from recsched_operator.recmodel.api import RecModelSpec
from recsched_operator.recmodel.config_document import ConfigDocument
from recsched_operator.recmodel.naming import Owner
from recsched_operator.tuner.bridge import decide, tuner_inputs
from recsched_operator.tuner.observation import Observation
from recsched_operator.tuner.outcome import TuningOutcome
from recsched_operator.tuner.settings import SloTarget


class ObservationSource(Protocol):
    """Reads one RecModel's SLO window ending at `now_s` (Unix seconds); never raises for a
    missing or failed read: it returns an `Observation` with `error` set and the tuner holds."""

    def observe(
        self, recmodel: str, namespace: str | None, slo: SloTarget, now_s: float
    ) -> Observation: ...


@dataclass(frozen=True)
class Applied:
    """What an actuator did with a config document: it is now the document of record, and
    `acknowledged` of `total` pods or processes confirmed serving its generation."""

    config: ConfigDocument
    acknowledged: int
    total: int


@dataclass(frozen=True)
class CycleRecord:
    """One cycle's result, handed to `Actuator.record` and returned to the shell."""

    at: datetime.datetime
    outcome: TuningOutcome
    served: ConfigDocument  # the document of record after this cycle
    applied: Applied | None  # None: nothing was actuated (hold, recommend, or not `auto`)


class Actuator(Protocol):
    """How decisions reach the pods and where cycles are recorded (cluster or local)."""

    async def apply(self, config: ConfigDocument) -> Applied:
        """Make `config` the document of record and push it to every pod; raise if the document
        of record could not be written (a pod missing the push is reported, not raised)."""
        ...

    async def record(self, cycle: CycleRecord) -> None:
        """Persist the cycle: its tuning state (`cycle.outcome.state`), decision and observation."""
        ...


def next_config(
    outcome: TuningOutcome, served: ConfigDocument, spec: RecModelSpec
) -> ConfigDocument | None:
    """The document to actuate, or None: only a changed decision in `auto` mode is applied, as
    the next generation of the served document (`ConfigDocument.next`: workers carry over)."""
    if not outcome.changed or spec.tuning.mode != "auto":
        return None
    return served.next(
        batch_size=outcome.after_batch_items, offload_threshold=outcome.after_threshold_items
    )


async def run_cycle(
    source: ObservationSource,
    actuator: Actuator,
    *,
    owner: Owner,
    spec: RecModelSpec,
    served: ConfigDocument,
    raw_state: Mapping[str, Any] | None,
    now: datetime.datetime,
) -> CycleRecord:
    """Observe, decide, actuate a change, record; returns what was recorded."""
    outcome = await asyncio.to_thread(
        _observe_and_decide, source, owner, spec, served, raw_state, now.timestamp()
    )
    document = next_config(outcome, served, spec)
    applied = None if document is None else await actuator.apply(document)
    cycle = CycleRecord(
        at=now,
        outcome=outcome,
        served=served if applied is None else applied.config,
        applied=applied,
    )
    await actuator.record(cycle)
    return cycle


def _observe_and_decide(
    source: ObservationSource,
    owner: Owner,
    spec: RecModelSpec,
    served: ConfigDocument,
    raw_state: Mapping[str, Any] | None,
    now_s: float,
) -> TuningOutcome:
    """The blocking half of the cycle: the read, and the decision (which in `recommend` mode runs
    the simulator), kept off the operator's event loop together."""
    _bounds, slo, _settings = tuner_inputs(spec)
    observation = source.observe(owner.name, owner.namespace, slo, now_s)
    return decide(
        spec=spec, current=served, raw_state=raw_state, observation=observation, now_s=now_s
    )
