"""Settings of one pod or router process: one pydantic-settings object, validated at start-up.

Every value comes from the command line (see `cli.py`) or from `RECSCHED_*` environment variables,
so the same image runs in a cluster (env from the Deployment) and in local mode (flags).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["pod", "router"]
# A headless Service's DNS name and the pods' port: checked at start, so a malformed name stops the
# router with one line instead of killing its endpoint refresh later.
DNS_ENDPOINT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:[0-9]{1,5}$")
Device = Literal["cpu", "cuda", "emulated"]
Pool = Literal["cpu", "gpu", "router"]
GraphMode = Literal["traced", "eager"]
PinPolicy = Literal["auto", "on", "off"]
HttpServer = Literal["lean", "httptools"]
UpstreamClient = Literal["lean", "aiohttp"]


def usable_cores() -> int:
    """Cores this process may run on (respects cgroup/affinity limits, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class PodSettings(BaseSettings):
    """Everything a pod or router process needs to start."""

    model_config = SettingsConfigDict(env_prefix="RECSCHED_", extra="ignore")

    role: Role = "pod"
    model: str = Field(default="rmc1", description="Model zoo name, e.g. rmc1, wnd, dien.")
    scale: float = Field(
        default=0.01, gt=0, le=4.0, description="Embedding rows = paper rows x scale."
    )
    seed: int = Field(default=0, ge=0, description="Weight initialisation seed.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    recmodel: str = Field(
        default="local", description="RecModel name, the `recmodel` metric label."
    )
    pool: Pool | None = Field(
        default=None, description="Pool label; defaults from role and device."
    )
    device: Device = "cpu"
    config_path: Path | None = Field(default=None, description="Config document file (ConfigMap).")
    config_poll_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the config file is checked for changes; a mounted "
        "ConfigMap updates within about a minute, so a second is plenty.",
    )
    admin_token: str | None = Field(default=None, description="Bearer token for /admin.")
    admin_token_file: Path | None = Field(default=None, description="File holding the token.")
    workers: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Initial model workers when no config file gives "
        "them; default one per usable core.",
    )
    batch_size: int = Field(
        default=64, ge=1, le=4096, description="Initial batch size when no config file gives one."
    )
    gpu_batch_cap_items: int = Field(
        default=1024,
        ge=1,
        le=65536,
        description="GPU and emulated pods run queries whole and "
        "split only above this many items (the config's batchSize is the CPU pool's knob).",
    )
    gpu_profile_path: Path | None = Field(
        default=None,
        description="Emulated device: GPU latency profile measured on a real GPU "
        "(bench/gpu_profile.py); default: this host's CPU times / the paper's GPU speedups.",
    )
    max_query_items: int = Field(
        default=1024, ge=1, le=65536, description="Larger queries get 413."
    )
    max_queue_requests: int = Field(
        default=4096,
        ge=1,
        description="Bound on queued requests; a query that would exceed it gets "
        "503 instead of an unbounded wait; 4096 holds four max-size queries even at B=1.",
    )
    retry_after_ms: int = Field(default=100, ge=1, description="Hint sent with 503 responses.")
    warmup_rounds: int = Field(default=2, ge=0, description="Forward passes before ready.")
    graph_mode: GraphMode = Field(
        default="traced",
        description="traced: workers run the model's TorchScript trace, which holds no GIL "
        "during a request (used only after it matched the eager scores); eager: the nn.Module.",
    )
    pin_workers: PinPolicy = Field(
        default="auto",
        description="Pin model workers one per CPU. auto: only when the process may use no "
        "more CPUs than it has workers (an exclusive cpuset, e.g. the static CPU manager); "
        "on: always, round robin over the allowed CPUs; off: the kernel places them.",
    )
    gil_switch_interval_s: float = Field(
        default=0.0005,
        gt=0,
        le=0.1,
        description="Python's thread switch interval. The default "
        "5 ms lets the event loop hold the GIL while a worker waits between torch ops; 0.5 ms "
        "keeps workers fed (measured in docs/benchmarks/pod.md).",
    )

    # Router only: where the pools are (flags, a file, or headless-Service DNS names).
    cpu_endpoints: str | None = Field(default=None, description="host:port,... of CPU pods.")
    gpu_endpoints: str | None = Field(default=None, description="host:port,... of GPU pods.")
    endpoints_file: Path | None = Field(
        default=None, description='JSON {"cpu": [...], "gpu": [...]}, re-read on change.'
    )
    cpu_endpoints_dns: str | None = Field(default=None, description="Headless Service name:port.")
    gpu_endpoints_dns: str | None = Field(default=None, description="Headless Service name:port.")
    endpoint_refresh_s: float = Field(
        default=5.0, gt=0, description="Re-resolve DNS / re-read the endpoints file this often."
    )
    health_check_s: float = Field(
        default=1.0,
        gt=0,
        description="Check each endpoint's readiness this often; a failed "
        "connection marks it down at once, so this only bounds how fast it comes back.",
    )
    upstream_timeout_s: float = Field(default=30.0, gt=0, description="Per forwarded query.")
    request_read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client may take to send one whole request (head and body) from "
        "its first byte; later it gets 408 and the connection closes, so stalled senders cannot "
        "hold connections. 10 s is far above any real query (32 MiB take under 3 s at 100 Mbit/s).",
    )

    http_server: HttpServer = Field(
        default="lean",
        description="The HTTP/1.1 server protocol under uvicorn: lean (`http.lean_http`, bodies "
        "read into one buffer) or httptools (uvicorn's own, with the read timeout and body limit "
        "added: `http.bounded_httptools`); compared in docs/benchmarks/http_layer.md.",
    )
    upstream_client: UpstreamClient = Field(
        default="lean",
        description="Router only: the HTTP client to the pods, lean (`router.upstream_client`) "
        "or aiohttp (`router.aiohttp_upstream`); compared in docs/benchmarks/http_layer.md.",
    )

    @field_validator("cpu_endpoints_dns", "gpu_endpoints_dns")
    @classmethod
    def _dns_name_and_port(cls, value: str | None) -> str | None:
        if value is not None and not DNS_ENDPOINT.match(value):
            raise ValueError(f"{value!r} is not a DNS name:port (e.g. rm-cpu-pods.ns.svc:8000)")
        return value

    @model_validator(mode="after")
    def _token_from_file(self) -> PodSettings:
        if self.admin_token is None and self.admin_token_file is not None:
            try:
                token = self.admin_token_file.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise ValueError(f"admin_token_file {self.admin_token_file}: {error}") from error
            if not token:
                raise ValueError(f"admin_token_file {self.admin_token_file} is empty")
            self.admin_token = token
        return self

    @property
    def pool_label(self) -> str:
        if self.pool is not None:
            return self.pool
        if self.role == "router":
            return "router"
        return "cpu" if self.device == "cpu" else "gpu"

    @property
    def initial_workers(self) -> int:
        return self.workers if self.workers is not None else usable_cores()
