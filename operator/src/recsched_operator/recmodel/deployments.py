"""Pure builders of the router and pool Deployments (pod templates included).

Everything a pod template holds comes from the spec alone: a tuning change only rewrites the config
document (ConfigMap + push), so it never rolls a Deployment. That is why no config hash is stamped
on the template, unlike the usual "checksum/config" annotation trick.
"""

from __future__ import annotations

from typing import Any, Literal

from recsched_operator.recmodel.api import PoolSpec, RecModelSpec
from recsched_operator.recmodel.naming import (
    CONFIG_FILE_PATH,
    HTTP_PORT,
    TOKEN_FILE_PATH,
    Owner,
    child_metadata,
    configmap_name,
    deployment_name,
    headless_service_name,
    pod_labels,
    secret_name,
    selector_labels,
)

Role = Literal["router", "cpu", "gpu"]
CONFIG_DIR = CONFIG_FILE_PATH.rsplit("/", 1)[0]
TOKEN_DIR = TOKEN_FILE_PATH.rsplit("/", 1)[0]
GPU_RESOURCE = "nvidia.com/gpu"
NON_ROOT_UID = 10001
ALL_INTERFACES = "0.0.0.0"


def _probe(path: str, *, period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_UID,
        "runAsGroup": NON_ROOT_UID,
        "fsGroup": NON_ROOT_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_args(owner: Owner, spec: RecModelSpec, role: Role) -> list[str]:
    """The command line of the router or a pool pod (the contract with `recsched-pod`, checked by
    `tests/contracts/test_rendered_pods_start.py`). It replaces the image's CMD, so it names the
    wildcard host itself: the kubelet probes and the Services reach the pod on its pod IP."""
    args = [
        "--role",
        "router" if role == "router" else "pod",
        "--model",
        spec.model.name,
        "--scale",
        repr(spec.model.scale),
        "--host",
        ALL_INTERFACES,
        "--port",
        str(HTTP_PORT),
        "--config",
        CONFIG_FILE_PATH,
        "--admin-token-file",
        TOKEN_FILE_PATH,
        "--recmodel",
        owner.name,
    ]
    if role == "router":
        for pool in ("cpu", "gpu"):
            dns = f"{headless_service_name(owner.name, pool)}.{owner.namespace}.svc:{HTTP_PORT}"
            args += [f"--{pool}-endpoints-dns", dns]
        return args
    pool_spec: PoolSpec = spec.pools.cpu if role == "cpu" else spec.pools.gpu
    device = "cpu" if role == "cpu" else spec.pools.gpu.device
    return [*args, "--pool", role, "--device", device, "--workers", str(pool_spec.workers)]


def _resources(spec: RecModelSpec, role: Role) -> dict[str, Any]:
    if role == "router":
        return {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
    pool: PoolSpec = spec.pools.cpu if role == "cpu" else spec.pools.gpu
    requests: dict[str, int | str] = dict(pool.resources.requests)
    limits: dict[str, int | str] = dict(pool.resources.limits)
    if role == "gpu" and spec.pools.gpu.device == "cuda":
        # Extended resources must be equal in requests and limits; one GPU per pod.
        requests.setdefault(GPU_RESOURCE, 1)
        limits[GPU_RESOURCE] = requests[GPU_RESOURCE]
    rendered: dict[str, Any] = {}
    if requests:
        rendered["requests"] = requests
    if limits:
        rendered["limits"] = limits
    return rendered


def render_pod_template(owner: Owner, spec: RecModelSpec, role: Role) -> dict[str, Any]:
    """The pod template of one Deployment: probes, security, config and token mounts."""
    container: dict[str, Any] = {
        "name": "router" if role == "router" else "model",
        "image": spec.model.image,
        "imagePullPolicy": "IfNotPresent",
        "args": container_args(owner, spec, role),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "startupProbe": _probe("/v2/health/live", period_s=5, failures=60),
        "livenessProbe": _probe("/v2/health/live", period_s=10, failures=3),
        "readinessProbe": _probe("/v2/health/ready", period_s=5, failures=2),
        "resources": _resources(spec, role),
        "securityContext": _container_security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "admin-token", "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security_context(),
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": configmap_name(owner.name)}},
            {"name": "admin-token", "secret": {"secretName": secret_name(owner.name)}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    if role != "router":
        pool: PoolSpec = spec.pools.cpu if role == "cpu" else spec.pools.gpu
        if pool.node_selector:
            pod_spec["nodeSelector"] = dict(pool.node_selector)
        if pool.tolerations:
            pod_spec["tolerations"] = [t.model_dump(exclude_none=True) for t in pool.tolerations]
    return {
        "metadata": {
            "labels": pod_labels(owner.name, role),
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(HTTP_PORT),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": pod_spec,
    }


def replicas_for(spec: RecModelSpec, role: Role) -> int:
    """Desired replicas of the router or a pool."""
    if role == "router":
        return spec.router.replicas
    return spec.pools.cpu.replicas if role == "cpu" else spec.pools.gpu.replicas


def render_deployment(owner: Owner, spec: RecModelSpec, role: Role) -> dict[str, Any]:
    """The Deployment of the router or one pool."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(owner, deployment_name(owner.name, role), component=role),
        "spec": {
            "replicas": replicas_for(spec, role),
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector_labels(owner.name, role)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": render_pod_template(owner, spec, role),
        },
    }
