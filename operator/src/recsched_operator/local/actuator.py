"""Local mode's actuator: config file + push to every process + state file + decisions log.

The counterpart of the cluster's `reconcile.actuator.ClusterActuator`, driven by the same
`tuner.cycle.run_cycle`. The config file the processes watch plays the ConfigMap's role (the
document of record, written atomically before any push); `<run_dir>/tuning-state.json` plays the
RecModel status's `tuningState`, so `--resume` continues a search; `<run_dir>/decisions.jsonl`
holds one line per cycle (the decision, the observation and the generation served after it),
which the report, the demo summary and the drift check read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

from recsched_operator.local.plan import LocalPlan
from recsched_operator.local.processes import write_atomically
from recsched_operator.recmodel.config_document import ConfigDocument
from recsched_operator.reconcile.config_push import PodTarget, push_config
from recsched_operator.tuner.cycle import Applied, CycleRecord

logger = logging.getLogger(__name__)


class LocalActuator:
    """Applies documents to one local run's processes and records its cycles in its run folder."""

    def __init__(self, plan: LocalPlan, token: str, *, push_timeout_s: float = 5.0) -> None:
        self._plan = plan
        self._token = token
        self._push_timeout_s = push_timeout_s

    async def apply(self, config: ConfigDocument) -> Applied:
        """File first (what a restarted process reads), then a push every process must confirm."""
        document = config.to_json_dict()
        write_atomically(self._plan.config_path, json.dumps(document))
        targets = [PodTarget(p.name, p.base_url) for p in self._plan.processes]
        results = await push_config(targets, document, self._token, timeout_s=self._push_timeout_s)
        missed = [f"{r.pod}: {r.error}" for r in results if not r.acknowledged]
        if missed:
            # The file still carries the change: processes re-read it within a second.
            logger.warning(
                "generation %d push not acknowledged by %s", config.generation, "; ".join(missed)
            )
        return Applied(config, len(results) - len(missed), len(results))

    async def record(self, cycle: CycleRecord) -> None:
        outcome = cycle.outcome
        write_atomically(self._plan.state_path, json.dumps(outcome.state))
        line = {
            "at": cycle.at.isoformat(timespec="milliseconds"),
            "generation": cycle.served.generation,
            **{k: v for k, v in asdict(outcome).items() if k != "state"},
        }
        with self._plan.decisions_path.open("a", encoding="utf-8") as decisions:
            decisions.write(json.dumps(line) + "\n")
        logger.info("%s", outcome.message())
