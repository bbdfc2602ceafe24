"""What a local run starts, derived from the same rendered pod specs the cluster gets.

Local mode does not build command lines of its own: it renders the RecModel's Deployments with
`recmodel.deployments` (what the operator applies) and runs each container as a process, after a
small translation from a cluster to one machine:

- the image's entrypoint `recsched-pod` becomes `PYTHON -m recsched_pod`;
- `--host 0.0.0.0 --port 8000` becomes `--host 127.0.0.1 --port <a free port>` per process;
- the files the pod reads from its volumes move into the run folder: the ConfigMap's
  `/etc/recsched/config.json` becomes `<run_dir>/config.json`, the Secret's
  `/var/run/recsched/token` becomes `<run_dir>/admin-token`;
- the router's headless-Service DNS names (`--cpu-endpoints-dns`, `--gpu-endpoints-dns`) become
  one `--endpoints-file <run_dir>/endpoints.json` listing the pods' loopback ports;
- a pool's Deployment with N replicas becomes N processes; the router's becomes one;
- the container's `env` (literal values only) is added to the process' environment;
- emulated GPU pods get `--gpu-profile` when one is given (a cluster's GPU pods run on a device).

Anything else the rendered container carries passes through unchanged, and a flag whose value
lies on a volume local mode does not provide fails the plan, so a renderer change cannot drift
past local mode silently. No I/O here: tests check command lines and Prometheus configuration
without starting anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsched_operator.errors import RecSchedOperatorError
from recsched_operator.recmodel.api import RecModelSpec
from recsched_operator.recmodel.children import wanted_roles
from recsched_operator.recmodel.deployments import Role, render_deployment
from recsched_operator.recmodel.naming import CONFIG_FILE_PATH, TOKEN_FILE_PATH, Owner

LOOPBACK = "127.0.0.1"
POD_MODULE = ("-m", "recsched_pod")  # the image's ENTRYPOINT, recsched-pod, as a module
CONFIG_FILE = "config.json"
TOKEN_FILE = "admin-token"
ENDPOINTS_FILE = "endpoints.json"
DNS_FLAGS = frozenset({"--cpu-endpoints-dns", "--gpu-endpoints-dns"})
SCRAPE_INTERVAL_S = 1  # local runs are short: one-second resolution keeps windows of ~10 s useful


class LocalPlanError(RecSchedOperatorError):
    """A rendered pod spec local mode cannot translate (the message names what and why)."""


@dataclass(frozen=True)
class ProcessPlan:
    """One pod or router process: its name (also its log file), role, port and environment."""

    name: str
    role: str  # "router" | "cpu" | "gpu"
    port: int
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


@dataclass(frozen=True)
class LocalPlan:
    owner: Owner
    run_dir: Path
    processes: tuple[ProcessPlan, ...]
    prometheus_port: int

    @property
    def config_path(self) -> Path:
        return self.run_dir / CONFIG_FILE

    @property
    def token_path(self) -> Path:
        return self.run_dir / TOKEN_FILE

    @property
    def endpoints_path(self) -> Path:
        return self.run_dir / ENDPOINTS_FILE

    @property
    def state_path(self) -> Path:
        return self.run_dir / "tuning-state.json"

    @property
    def decisions_path(self) -> Path:
        return self.run_dir / "decisions.jsonl"

    @property
    def prometheus_url(self) -> str:
        return f"http://{LOOPBACK}:{self.prometheus_port}"

    @property
    def front_door(self) -> ProcessPlan:
        """Where clients send queries: the router."""
        return next(p for p in self.processes if p.role == "router")

    def by_role(self, role: str) -> list[ProcessPlan]:
        return [process for process in self.processes if process.role == role]


def rendered_pods(owner: Owner, spec: RecModelSpec) -> list[tuple[Role, int, dict[str, Any]]]:
    """Role, local process count and container of each Deployment the operator renders: pools
    first (the router only reports ready once a CPU pod does), a pool's replicas as processes,
    one router."""
    pods: list[tuple[Role, int, dict[str, Any]]] = []
    for role in sorted(wanted_roles(spec), key=lambda role: role == "router"):
        deployment = render_deployment(owner, spec, role)
        replicas = 1 if role == "router" else int(deployment["spec"]["replicas"])
        pods.append((role, replicas, deployment["spec"]["template"]["spec"]["containers"][0]))
    return pods


def local_args(container: Mapping[str, Any], *, port: int, run_dir: Path) -> tuple[str, ...]:
    """The container's `args` translated for one machine (see the module docstring)."""
    files = {
        CONFIG_FILE_PATH: str(run_dir / CONFIG_FILE),
        TOKEN_FILE_PATH: str(run_dir / TOKEN_FILE),
    }
    mounts = [str(m["mountPath"]).rstrip("/") + "/" for m in container.get("volumeMounts", [])]
    cluster: Sequence[str] = container["args"]
    if len(cluster) % 2:
        raise LocalPlanError(f"{container['name']}: args are not flag-value pairs: {cluster}")
    args: list[str] = []
    for flag, value in zip(cluster[::2], cluster[1::2], strict=True):
        if flag in DNS_FLAGS:
            if "--endpoints-file" not in args:
                args += ["--endpoints-file", str(run_dir / ENDPOINTS_FILE)]
            continue
        if flag == "--host":
            value = LOOPBACK
        elif flag == "--port":
            value = str(port)
        elif value in files:
            value = files[value]
        elif any(value.startswith(mount) for mount in mounts):
            raise LocalPlanError(
                f"{container['name']}: {flag} {value} is on a volume local mode does not provide"
            )
        args += [flag, value]
    return tuple(args)


def local_env(container: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The container's literal `env` entries; a value from a Secret or field cannot be local."""
    env: list[tuple[str, str]] = []
    for entry in container.get("env", []):
        if "value" not in entry:
            raise LocalPlanError(f"{container['name']}: env {entry['name']} has no literal value")
        env.append((str(entry["name"]), str(entry["value"])))
    return tuple(env)


def plan_local_run(
    owner: Owner,
    spec: RecModelSpec,
    run_dir: Path,
    ports: Iterator[int],
    python: str,
    gpu_profile: str | None = None,
) -> LocalPlan:
    """Processes from the rendered Deployments: a pod per pool replica, then one router (one is
    enough on one machine), and a Prometheus port. `gpu_profile` (a file, or a shipped profile's
    name such as `nvidia-h200`) goes to emulated GPU pods as `--gpu-profile`: the spec has no field
    for it, since a cluster's GPU pods run on a real device."""
    processes: list[ProcessPlan] = []
    for role, replicas, container in rendered_pods(owner, spec):
        emulated = role == "gpu" and spec.pools.gpu.device == "emulated"
        extra = ("--gpu-profile", gpu_profile) if emulated and gpu_profile else ()
        for index in range(replicas):
            port = next(ports)
            argv = (python, *POD_MODULE, *local_args(container, port=port, run_dir=run_dir), *extra)
            processes.append(
                ProcessPlan(f"{role}-{index}", role, port, argv, env=local_env(container))
            )
    return LocalPlan(owner, run_dir, tuple(processes), prometheus_port=next(ports))


def endpoints_document(plan: LocalPlan) -> dict[str, list[str]]:
    """The router's endpoints file: pool -> host:port list."""
    return {
        pool: [f"{LOOPBACK}:{process.port}" for process in plan.by_role(pool)]
        for pool in ("cpu", "gpu")
    }


def file_sd_targets(plan: LocalPlan) -> list[dict[str, Any]]:
    """Prometheus file-based discovery: one target group per process, labelled by component."""
    return [
        {
            "targets": [f"{LOOPBACK}:{process.port}"],
            # The namespace label a cluster's scrape config adds, so the tuner's queries match.
            "labels": {"component": process.name, "namespace": plan.owner.namespace},
        }
        for process in plan.processes
    ]


def prometheus_config(plan: LocalPlan) -> str:
    """A minimal Prometheus configuration (YAML is a superset of JSON, so JSON text is valid)."""
    document = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": "15s"},
        "scrape_configs": [
            {
                "job_name": "recsched",
                "metrics_path": "/metrics",
                "file_sd_configs": [
                    {"files": [str(plan.run_dir / "targets.json")], "refresh_interval": "5s"}
                ],
            }
        ],
    }
    return json.dumps(document, indent=1)
