"""Pure status assembly: pool readiness, phases, the applied config, and the InvalidSpec status.

Reconcile and the tuning loop both write status; the pieces they share live here as functions of
plain data and `now`, so every branch is tested without an API server.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from recsched_operator.errors import InvalidSpecError
from recsched_operator.recmodel import conditions as cond
from recsched_operator.recmodel.api import RecModelSpec
from recsched_operator.recmodel.config_document import ConfigDocument
from recsched_operator.recmodel.deployments import Role, replicas_for

POOL_CONDITIONS: dict[Role, str] = {
    "router": cond.ROUTER_READY,
    "cpu": cond.CPU_POOL_READY,
    "gpu": cond.GPU_POOL_READY,
}
TUNING_PHASES = frozenset({"Tuning", "Converged", "Holding", "Recommending", "Paused", "Off"})


def pool_status(
    spec: RecModelSpec, deployments: Mapping[Role, Mapping[str, Any] | None]
) -> dict[str, dict[str, int]]:
    """Desired and ready replicas per role, read from the Deployments' status."""
    pools: dict[str, dict[str, int]] = {}
    for role in POOL_CONDITIONS:
        deployment = deployments.get(role)
        ready = int((deployment or {}).get("status", {}).get("readyReplicas", 0) or 0)
        pools[role] = {"replicas": replicas_for(spec, role), "readyReplicas": ready}
    return pools


def pool_conditions(
    existing: Sequence[Mapping[str, Any]],
    pools: Mapping[str, Mapping[str, int]],
    *,
    generation: int,
    now: datetime.datetime,
) -> list[dict[str, Any]]:
    """Per-pool conditions plus the aggregate `Ready` (every requested pool fully ready)."""
    conditions = [dict(c) for c in existing]
    all_ready = True
    for role, type_ in POOL_CONDITIONS.items():
        wanted, ready = pools[role]["replicas"], pools[role]["readyReplicas"]
        if wanted == 0:
            ok, reason, message = True, "NotRequested", f"{role} pool has 0 replicas"
        elif ready >= wanted:
            ok, reason, message = True, "ReplicasReady", f"{ready}/{wanted} ready"
        else:
            ok, reason, message = False, "ReplicasNotReady", f"{ready}/{wanted} ready"
            all_ready = False
        conditions = cond.set_verdict(
            conditions, type_, ok, reason, message, now=now, observed_generation=generation
        )
    not_ready = [r for r in POOL_CONDITIONS if pools[r]["readyReplicas"] < pools[r]["replicas"]]
    return cond.set_verdict(
        conditions,
        cond.READY,
        all_ready,
        "Deployed" if all_ready else "PoolsNotReady",
        "every pool is ready" if all_ready else "not ready: " + ", ".join(not_ready),
        now=now,
        observed_generation=generation,
    )


def deployed_phase(previous_phase: str | None, ready: bool) -> str:
    """Phase after a reconcile: Deploying until ready, then keep the tuner's phase if any."""
    if not ready:
        return "Deploying"
    return previous_phase if previous_phase in TUNING_PHASES else "Ready"


def applied_status(
    config: ConfigDocument, *, now: datetime.datetime, acknowledged: int, total: int
) -> dict[str, Any]:
    return {
        **config.to_json_dict(),
        "appliedAt": cond.format_time(now),
        "podsAcknowledged": acknowledged,
        "podsTotal": total,
    }


def reported_applied(config: ConfigDocument, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """`status.applied` for the ConfigMap's document, keeping push details of that generation."""
    report: dict[str, Any] = dict(config.to_json_dict())
    if previous and previous.get("generation") == config.generation:
        for key in ("appliedAt", "podsAcknowledged", "podsTotal"):
            if key in previous:
                report[key] = previous[key]
    return report


def invalid_spec_status(
    existing: Sequence[Mapping[str, Any]],
    error: InvalidSpecError,
    *,
    generation: int,
    now: datetime.datetime,
) -> dict[str, Any]:
    """Status of a RecModel whose spec cannot be served: Ready=False naming the field."""
    return {
        "observedGeneration": generation,
        "phase": "Invalid",
        "conditions": cond.set_condition(
            existing,
            type_=cond.READY,
            status="False",
            reason="InvalidSpec",
            message=str(error),
            now=now,
            observed_generation=generation,
        ),
    }
