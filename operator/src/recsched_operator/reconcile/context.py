"""What every handler and the tuning daemon share: the operator context and the Event sink.

Its own module so that the cluster actuator (`actuator`), the reconcile orchestration
(`controller`) and the tuning daemon can all take it without importing one another in a circle.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from recsched_operator.metrics import OperatorMetrics
from recsched_operator.recmodel.naming import Owner
from recsched_operator.reconcile.kube_api import KubeApi
from recsched_operator.settings import OperatorSettings


class EventSink(Protocol):
    """Posts a Kubernetes Event about the RecModel being handled."""

    def __call__(self, type_: str, reason: str, message: str) -> None: ...


@dataclass
class OperatorContext:
    """What every handler needs, built once at start-up and kept in kopf's memo."""

    settings: OperatorSettings
    kube: KubeApi
    metrics: OperatorMetrics
    _config_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    def config_lock(self, owner: Owner) -> asyncio.Lock:
        """Serialises config changes of one RecModel (reconcile and tuning both make them), so
        generations never fork: two writers of generation N+1 with different knobs."""
        return self._config_locks.setdefault((owner.namespace, owner.name), asyncio.Lock())
