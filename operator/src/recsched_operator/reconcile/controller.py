"""Reconcile orchestration: apply a RecModel's children, read its config and pool readiness.

This is the I/O layer between kopf handlers (which only guard and call) and the pure builders.
It talks to Kubernetes through `KubeApi`; a config change the spec causes goes to the pods through
the cluster actuator's `push_document` (the same path the tuning cycle uses). It reports what
happened as a status dict plus Events, leaving kopf to write the status it returns.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from recsched_operator.recmodel import conditions as cond
from recsched_operator.recmodel.api import RecModelSpec, parse_spec
from recsched_operator.recmodel.children import ROLES, render_children, wanted_roles
from recsched_operator.recmodel.config_document import (
    ConfigDocument,
    ConfigDocumentError,
    config_for_spec,
    config_from_configmap,
)
from recsched_operator.recmodel.deployments import Role
from recsched_operator.recmodel.naming import (
    POOL_LABEL,
    Owner,
    configmap_name,
    deployment_name,
)
from recsched_operator.recmodel.status import (
    applied_status,
    deployed_phase,
    pool_conditions,
    pool_status,
)
from recsched_operator.reconcile.actuator import ensure_token, push_document
from recsched_operator.reconcile.context import EventSink, OperatorContext

logger = logging.getLogger(__name__)


async def read_config(ctx: OperatorContext, owner: Owner) -> ConfigDocument | None:
    """The config document in the ConfigMap: what pods serve (status only reports it)."""
    configmap = await ctx.kube.get("v1", "ConfigMap", owner.namespace, configmap_name(owner.name))
    if configmap is None:
        return None
    try:
        return config_from_configmap(configmap)
    except ConfigDocumentError as error:
        logger.warning("no valid config document: %s", error)
        return None


async def read_deployments(
    ctx: OperatorContext, owner: Owner
) -> dict[Role, Mapping[str, Any] | None]:
    return {
        role: await ctx.kube.get(
            "apps/v1", "Deployment", owner.namespace, deployment_name(owner.name, role)
        )
        for role in ROLES
    }


async def reconcile(
    ctx: OperatorContext,
    owner: Owner,
    *,
    generation: int,
    raw_spec: Mapping[str, Any],
    raw_status: Mapping[str, Any],
    now: datetime.datetime,
    events: EventSink,
) -> dict[str, Any]:
    """Bring children in line with the spec and return the new status (raises InvalidSpecError)."""
    spec: RecModelSpec = parse_spec(raw_spec)
    await ensure_token(ctx, owner)
    status: dict[str, Any] = {"observedGeneration": generation}
    deployments: dict[Role, Mapping[str, Any] | None] = dict.fromkeys(ROLES)
    async with ctx.config_lock(owner):
        current = await read_config(ctx, owner)
        config = config_for_spec(spec, current.to_json_dict() if current else None)
        for child in render_children(owner, spec, config):
            applied = await ctx.kube.apply(child)
            if child["kind"] == "Deployment":
                role: Role = child["spec"]["template"]["metadata"]["labels"][POOL_LABEL]
                deployments[role] = applied
        if current != config:
            actuation = await push_document(ctx, owner, config, events)
            status["applied"] = applied_status(
                config, now=now, acknowledged=actuation.acknowledged, total=len(actuation.results)
            )
    for role in set(ROLES) - set(wanted_roles(spec)):
        if await ctx.kube.delete(
            "apps/v1", "Deployment", owner.namespace, deployment_name(owner.name, role)
        ):
            events("Normal", "PoolRemoved", f"{role} Deployment deleted: replicas is 0")
    status.update(pool_readiness_status(spec, deployments, raw_status, generation, now))
    logger.info(
        "reconciled %s/%s: generation %d, config generation %d",
        owner.namespace,
        owner.name,
        generation,
        config.generation,
    )
    return status


def pool_readiness_status(
    spec: RecModelSpec,
    deployments: Mapping[Role, Mapping[str, Any] | None],
    raw_status: Mapping[str, Any],
    generation: int,
    now: datetime.datetime,
) -> dict[str, Any]:
    pools = pool_status(spec, deployments)
    conditions = pool_conditions(
        raw_status.get("conditions") or [], pools, generation=generation, now=now
    )
    ready = (cond.get_condition(conditions, cond.READY) or {}).get("status") == "True"
    return {
        "pools": pools,
        "conditions": conditions,
        "phase": deployed_phase(raw_status.get("phase"), ready),
    }
