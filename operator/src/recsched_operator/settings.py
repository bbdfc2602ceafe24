"""The operator's one settings object (pydantic-settings, env prefix `RECSCHED_`).

Validated once at start-up; tests build their own instance instead of flipping test-mode switches.
Every duration says its unit in its name.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    """Everything the operator reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="RECSCHED_", extra="forbid", frozen=True)

    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        pattern=r"^https?://",
        description="Prometheus the tuner queries unless a RecModel sets spec.prometheusUrl.",
    )
    metrics_host: str = Field(default="0.0.0.0", description="Address of /metrics and /healthz.")
    metrics_port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port.")
    kube_api_url: str | None = Field(
        default=None,
        description="API server URL; unset means in-cluster service account, then kubeconfig.",
    )
    kube_api_token: SecretStr | None = Field(default=None, description="Bearer token for it.")
    kube_api_insecure: bool = Field(default=False, description="Skip TLS verification (dev only).")
    api_timeout_s: float = Field(default=10.0, gt=0, description="Per Kubernetes API request.")
    push_timeout_s: float = Field(default=5.0, gt=0, description="Per pod config push or check.")
    prometheus_timeout_s: float = Field(default=10.0, gt=0, description="Per PromQL query.")
    history_limit: int = Field(default=20, ge=1, le=50, description="Trials kept in status.")
    peering_name: str = Field(default="recsched", description="Kopf peering object name.")
    peering_priority: int | None = Field(
        default=None,
        description="Kopf peering priority; unset draws a random one so replicas never tie.",
    )
    log_format: Literal["json", "plain"] = Field(default="json", description="Operator log lines.")
    tuning_error_backoff_s: float = Field(
        default=30.0, gt=0, description="Wait after an unexpected tuning-step error."
    )
