"""The local tuning loop: observe through Prometheus, decide with the tuner, apply, record.

The decision is made by the same `tuner_bridge.observe_and_decide` as in the cluster; the
actuation differs only in its channel: the config file the pods watch (the ConfigMap's role) is
rewritten atomically and the document is pushed to every process with `PUT /admin/config`. Tuning
state lives in `<run_dir>/tuning-state.json`, so `--resume` continues a search.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from recsched_operator.local.plan import LocalPlan
from recsched_operator.local.processes import write_atomically
from recsched_operator.recmodel.api import RecModelSpec
from recsched_operator.recmodel.children import ConfigDocument
from recsched_operator.reconcile.config_push import PodTarget, push_config
from recsched_operator.tuner import bridge as tuner_bridge
from recsched_operator.tuner.outcome import TuningOutcome

logger = logging.getLogger(__name__)


class LocalTuner:
    """One RecModel's tuner in local mode: `step()` once per tuning interval."""

    def __init__(
        self,
        plan: LocalPlan,
        spec: RecModelSpec,
        served: ConfigDocument,
        token: str,
        *,
        clock: Callable[[], float] = time.time,
        raw_state: dict[str, Any] | None = None,
    ) -> None:
        self._plan = plan
        self._spec = spec
        self._token = token
        self._clock = clock
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
        now = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
        outcome = tuner_bridge.observe_and_decide(
            prometheus_url=self._plan.prometheus_url,
            owner=self._plan.owner,
            spec=self._spec,
            current=self.served,
            raw_state=self.raw_state,
            now=now,
            timeout_s=5.0,
        )
        self.raw_state = outcome.state
        write_atomically(self._plan.state_path, json.dumps(outcome.state))
        if outcome.changed and self._spec.tuning.mode == "auto":
            self.apply(
                ConfigDocument(
                    generation=self.served.generation + 1,
                    batch_size=outcome.after_batch_items,
                    offload_threshold=outcome.after_threshold_items,
                    workers=self.served.workers,
                )
            )
        record = {
            "at": now.isoformat(timespec="milliseconds"),
            "generation": self.served.generation,
            **{k: v for k, v in asdict(outcome).items() if k != "state"},
        }
        with self._plan.decisions_path.open("a", encoding="utf-8") as decisions:
            decisions.write(json.dumps(record) + "\n")
        logger.info("%s", outcome.message())
        return outcome

    def apply(self, document: ConfigDocument) -> None:
        """File first (what a restarted pod reads), then a push every process must acknowledge."""
        write_atomically(self._plan.config_path, json.dumps(document.to_json_dict()))
        targets = [PodTarget(p.name, p.base_url) for p in self._plan.processes]
        results = asyncio.run(
            push_config(targets, document.to_json_dict(), self._token, timeout_s=5.0)
        )
        missed = [f"{r.pod}: {r.error}" for r in results if not r.acknowledged]
        if missed:
            # The file still carries the change: pods re-read it within a second.
            logger.warning(
                "generation %d push not acknowledged by %s", document.generation, "; ".join(missed)
            )
        self.served = document


def read_decisions(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
