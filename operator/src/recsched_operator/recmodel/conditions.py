"""Status conditions in the standard `metav1.Condition` shape, as pure functions.

Conditions are a list-map keyed by `type`. `lastTransitionTime` only moves when `status` flips, so
`kubectl wait --for=condition=Ready` and dashboards see real transitions, not every reconcile.
`now` is passed in, never read here, so tests need no clock.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]

READY = "Ready"
CPU_POOL_READY = "CPUPoolReady"
GPU_POOL_READY = "GPUPoolReady"
ROUTER_READY = "RouterReady"
METRICS_AVAILABLE = "MetricsAvailable"
SLO_MET = "SLOMet"
TUNED = "Tuned"


def format_time(now: datetime.datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes timestamps."""
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    *,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime.datetime,
    observed_generation: int | None,
) -> list[dict[str, Any]]:
    """A new list with `type_` set; its transition time only moves when the status changes."""
    updated: list[dict[str, Any]] = []
    previous: Mapping[str, Any] | None = None
    for condition in conditions:
        if condition.get("type") == type_:
            previous = condition
        else:
            updated.append(dict(condition))
    transition = (
        str(previous["lastTransitionTime"])
        if previous is not None
        and previous.get("status") == status
        and previous.get("lastTransitionTime")
        else format_time(now)
    )
    entry: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if observed_generation is not None:
        entry["observedGeneration"] = observed_generation
    updated.append(entry)
    return sorted(updated, key=lambda item: str(item["type"]))


def set_verdict(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    ok: bool | None,
    reason: str,
    message: str,
    *,
    now: datetime.datetime,
    observed_generation: int | None,
) -> list[dict[str, Any]]:
    """`set_condition` for a yes/no verdict: `ok` True or False, None when it is not known."""
    status: ConditionStatus = "Unknown" if ok is None else ("True" if ok else "False")
    return set_condition(
        conditions,
        type_=type_,
        status=status,
        reason=reason,
        message=message,
        now=now,
        observed_generation=observed_generation,
    )


def get_condition(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    """The condition of that type, or None."""
    for condition in conditions:
        if condition.get("type") == type_:
            return condition
    return None
