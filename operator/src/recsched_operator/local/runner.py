"""Local mode's shell around the tuning cycle: `LocalTuner.step()` once per tuning interval.

It runs the same `tuner.cycle.run_cycle` as the cluster's tuning daemon, with local mode's two
parts: a `PrometheusSource` on the run's own Prometheus and a `LocalActuator` (config file + push
+ state file + decisions log). It keeps what the cluster keeps in the ConfigMap and the RecModel
status in memory between steps (the served document, the tuning state), starting from
`--resume`'s files when given. `step()` is synchronous because the local supervisor is: each step
runs the cycle to completion on its own event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recsched_operator.local.actuator import LocalActuator
from recsched_operator.local.plan import LocalPlan
from recsched_operator.recmodel.api import RecModelSpec
from recsched_operator.recmodel.config_document import ConfigDocument
from recsched_operator.tuner.cycle import ObservationSource, run_cycle
from recsched_operator.tuner.outcome import TuningOutcome
from recsched_operator.tuner.prometheus_source import PrometheusSource

PROMETHEUS_TIMEOUT_S = 5.0  # the run's Prometheus is on loopback: an answer takes milliseconds


class LocalTuner:
    """One RecModel's tuner in local mode: `step()` once per tuning interval.

    `source` defaults to the run's Prometheus (`plan.prometheus_url`); tests pass their own.
    """

    def __init__(
        self,
        plan: LocalPlan,
        spec: RecModelSpec,
        served: ConfigDocument,
        token: str,
        *,
        clock: Callable[[], float] = time.time,
        raw_state: dict[str, Any] | None = None,
        source: ObservationSource | None = None,
    ) -> None:
        self._plan = plan
        self._spec = spec
        self._clock = clock
        self._source: ObservationSource = source or PrometheusSource(
            plan.prometheus_url, timeout_s=PROMETHEUS_TIMEOUT_S
        )
        self._actuator = LocalActuator(plan, token)
        self.served = served
        self.raw_state = raw_state

    @property
    def spec(self) -> RecModelSpec:
        return self._spec

    @spec.setter
    def spec(self, spec: RecModelSpec) -> None:
        """A manifest edited while running (the SLO, the tuning bounds): the next step uses it."""
        self._spec = spec

    def step(self) -> TuningOutcome:
        """One cycle; afterwards `served` and `raw_state` are what it recorded."""
        now = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
        cycle = asyncio.run(
            run_cycle(
                self._source,
                self._actuator,
                owner=self._plan.owner,
                spec=self._spec,
                served=self.served,
                raw_state=self.raw_state,
                now=now,
            )
        )
        self.served = cycle.served
        self.raw_state = cycle.outcome.state
        return cycle.outcome


def read_decisions(path: Path) -> list[dict[str, Any]]:
    """The decisions log `LocalActuator` writes, oldest first (empty when no step ran)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
