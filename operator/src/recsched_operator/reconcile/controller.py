"""Reconcile orchestration: apply a RecModel's children, actuate configs, read pool readiness.

This is the I/O layer between kopf handlers (which only guard and call) and the pure builders.
It talks to Kubernetes through `KubeApi` and to pods through `config_push`, and reports what
happened as a status dict plus Events, leaving kopf to write the status it returns.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from recsched_operator.metrics import OperatorMetrics
from recsched_operator.recmodel import conditions as cond
from recsched_operator.recmodel.api import RecModelSpec, parse_spec
from recsched_operator.recmodel.children import (
    ROLES,
    ConfigDocument,
    render_children,
    render_configmap,
    render_secret,
    wanted_roles,
)
from recsched_operator.recmodel.deployments import Role
from recsched_operator.recmodel.naming import (
    CONFIG_KEY,
    POOL_LABEL,
    TOKEN_KEY,
    Owner,
    configmap_name,
    deployment_name,
    pool_pods_selector,
    secret_name,
)
from recsched_operator.recmodel.status import (
    applied_status,
    config_for_spec,
    deployed_phase,
    pool_conditions,
    pool_status,
)
from recsched_operator.reconcile.config_push import PushResult, push_config, ready_pod_targets
from recsched_operator.reconcile.kube_api import KubeApi
from recsched_operator.settings import OperatorSettings

logger = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class Actuation:
    """Outcome of pushing one config document."""

    config: ConfigDocument
    results: tuple[PushResult, ...]

    @property
    def acknowledged(self) -> int:
        return sum(1 for result in self.results if result.acknowledged)

    @property
    def failures(self) -> tuple[PushResult, ...]:
        return tuple(result for result in self.results if not result.acknowledged)


async def ensure_token(ctx: OperatorContext, owner: Owner) -> str:
    """Return the admin token, creating its Secret once (never re-generated, never logged)."""
    for _attempt in range(2):
        existing = await ctx.kube.get("v1", "Secret", owner.namespace, secret_name(owner.name))
        if existing is not None:
            data = existing.get("data") or {}
            if TOKEN_KEY in data:
                return base64.b64decode(data[TOKEN_KEY]).decode()
        token = secrets.token_urlsafe(32)
        if await ctx.kube.create(render_secret(owner, token)):
            return token
    raise RuntimeError(f"Secret {secret_name(owner.name)} exists but has no {TOKEN_KEY!r} key")


async def read_config(ctx: OperatorContext, owner: Owner) -> ConfigDocument | None:
    """The config document in the ConfigMap: what pods serve (status only reports it)."""
    configmap = await ctx.kube.get("v1", "ConfigMap", owner.namespace, configmap_name(owner.name))
    if configmap is None:
        return None
    try:
        document = json.loads((configmap.get("data") or {})[CONFIG_KEY])
        return ConfigDocument(
            generation=int(document["generation"]),
            batch_size=int(document["batchSize"]),
            offload_threshold=int(document["offloadThreshold"]),
            workers=int(document["workers"]),
        )
    except (KeyError, ValueError, TypeError):
        logger.warning("ConfigMap %s holds no valid config document", configmap_name(owner.name))
        return None


async def actuate(ctx: OperatorContext, owner: Owner, config: ConfigDocument) -> Actuation:
    """ConfigMap update, then push to every ready pod found by label, then check each one."""
    await ctx.kube.apply(render_configmap(owner, config))
    token = await ensure_token(ctx, owner)
    pods = await ctx.kube.list(
        "v1", "Pod", owner.namespace, label_selector=pool_pods_selector(owner.name)
    )
    targets = ready_pod_targets(pods)
    results = await push_config(
        targets, config.to_json_dict(), token, timeout_s=ctx.settings.push_timeout_s
    )
    actuation = Actuation(config=config, results=tuple(results))
    if actuation.failures:
        ctx.metrics.push_failures.labels(owner.namespace, owner.name).inc(len(actuation.failures))
    return actuation


async def read_deployments(
    ctx: OperatorContext, owner: Owner
) -> dict[Role, Mapping[str, Any] | None]:
    return {
        role: await ctx.kube.get(
            "apps/v1", "Deployment", owner.namespace, deployment_name(owner.name, role)
        )
        for role in ROLES
    }


def report_actuation(actuation: Actuation, events: EventSink) -> None:
    generation = actuation.config.generation
    if actuation.failures:
        failed = ", ".join(f"{r.pod} ({r.error})" for r in actuation.failures)
        events("Warning", "ConfigPushFailed", f"generation {generation} not served by: {failed}")
    elif actuation.results:
        events(
            "Normal",
            "ConfigApplied",
            f"generation {generation} served by {actuation.acknowledged} pods",
        )


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
            actuation = await actuate(ctx, owner, config)
            report_actuation(actuation, events)
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
