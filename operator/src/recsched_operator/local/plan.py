"""What a local run starts, derived purely from a RecModel spec: processes, ports, files.

No I/O here: tests check command lines and Prometheus configuration without starting anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsched_operator.recmodel.api import RecModelSpec
from recsched_operator.recmodel.naming import Owner

SCRAPE_INTERVAL_S = 1  # local runs are short: one-second resolution keeps windows of ~10 s useful


@dataclass(frozen=True)
class ProcessPlan:
    """One pod or router process: its name (also its log file), role and port."""

    name: str
    role: str  # "router" | "cpu" | "gpu"
    port: int
    argv: tuple[str, ...]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class LocalPlan:
    owner: Owner
    run_dir: Path
    processes: tuple[ProcessPlan, ...]
    prometheus_port: int

    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.json"

    @property
    def token_path(self) -> Path:
        return self.run_dir / "admin-token"

    @property
    def endpoints_path(self) -> Path:
        return self.run_dir / "endpoints.json"

    @property
    def state_path(self) -> Path:
        return self.run_dir / "tuning-state.json"

    @property
    def decisions_path(self) -> Path:
        return self.run_dir / "decisions.jsonl"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def front_door(self) -> ProcessPlan:
        """Where clients send queries: the router."""
        return next(p for p in self.processes if p.role == "router")

    def by_role(self, role: str) -> list[ProcessPlan]:
        return [process for process in self.processes if process.role == role]


def plan_local_run(
    owner: Owner,
    spec: RecModelSpec,
    run_dir: Path,
    ports: Iterator[int],
    python: str,
    gpu_profile: str | None = None,
) -> LocalPlan:
    """Pods for each pool replica, one router in front (the spec always has one; one process is
    enough on one machine), and a Prometheus port. `gpu_profile` (a file, or a shipped profile's
    name such as `nvidia-h200`) goes to emulated GPU pods as `--gpu-profile`: the spec has no field
    for it, since a cluster's GPU pods run on a real device."""
    processes: list[ProcessPlan] = []
    common = (
        "--model", spec.model.name,
        "--scale", f"{spec.model.scale:g}",
        "--host", "127.0.0.1",
        "--config", str(run_dir / "config.json"),
        "--admin-token-file", str(run_dir / "admin-token"),
        "--recmodel", owner.name,
    )  # fmt: skip
    pools = (
        ("cpu", spec.pools.cpu.replicas, "cpu", spec.pools.cpu.workers),
        ("gpu", spec.pools.gpu.replicas, spec.pools.gpu.device, spec.pools.gpu.workers),
    )
    for pool, replicas, device, workers in pools:
        emulation = ("--gpu-profile", gpu_profile) if device == "emulated" and gpu_profile else ()
        for index in range(replicas):
            port = next(ports)
            processes.append(ProcessPlan(
                name=f"{pool}-{index}",
                role=pool,
                port=port,
                argv=(python, "-m", "recsched_pod", "--role", "pod", *common, "--port", str(port),
                      "--pool", pool, "--device", device, "--workers", str(workers), *emulation),
            ))  # fmt: skip
    port = next(ports)
    processes.append(ProcessPlan(
        name="router-0",
        role="router",
        port=port,
        argv=(python, "-m", "recsched_pod", "--role", "router", *common, "--port", str(port),
              "--endpoints-file", str(run_dir / "endpoints.json")),
    ))  # fmt: skip
    return LocalPlan(owner, run_dir, tuple(processes), prometheus_port=next(ports))


def endpoints_document(plan: LocalPlan) -> dict[str, list[str]]:
    """The router's endpoints file: pool -> host:port list."""
    return {
        pool: [f"127.0.0.1:{process.port}" for process in plan.by_role(pool)]
        for pool in ("cpu", "gpu")
    }


def file_sd_targets(plan: LocalPlan) -> list[dict[str, Any]]:
    """Prometheus file-based discovery: one target group per process, labelled by component."""
    return [
        {
            "targets": [f"127.0.0.1:{process.port}"],
            # The namespace label a cluster's scrape config adds, so the tuner's queries match.
            "labels": {"component": process.name, "namespace": plan.owner.namespace},
        }
        for process in plan.processes
    ]


def prometheus_config(plan: LocalPlan) -> str:
    """A minimal Prometheus configuration (YAML is a superset of JSON, so JSON text is valid)."""
    import json

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
