"""Typed RecModel spec: the pydantic mirror of `crds/recmodels.recsched.io.yaml`.

The CRD's OpenAPI schema rejects what it can (types, enums, ranges) at `kubectl apply`; this module
parses the same document into frozen models and adds the checks a structural schema cannot express
(min <= initial <= max). Both sides carry the same defaults, and a contract test checks that every
example parses here and validates against the CRD schema, so the two cannot drift silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsched_operator.errors import InvalidSpecError

GROUP = "recsched.io"
VERSION = "v1alpha1"
PLURAL = "recmodels"
KIND = "RecModel"
API_VERSION = f"{GROUP}/{VERSION}"
PAUSE_ANNOTATION = f"{GROUP}/tuning-paused"

ModelName = Literal["rmc1", "rmc2", "rmc3", "ncf", "wnd", "mtwnd", "din", "dien"]
TuningMode = Literal["auto", "recommend", "off"]
GpuDevice = Literal["cuda", "emulated"]
MAX_QUERY_ITEMS = 1024
NO_OFFLOAD_THRESHOLD = MAX_QUERY_ITEMS + 1


class _SpecModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ModelSpec(_SpecModel):
    name: ModelName
    scale: float = Field(default=1.0, gt=0, le=1)
    image: str = Field(min_length=1)


class SloSpec(_SpecModel):
    percentile: Literal[95, 99] = 95
    target_ms: float = Field(alias="targetMs", gt=0)
    window_s: int = Field(default=60, alias="windowSeconds", ge=10, le=3600)
    min_samples: int = Field(default=100, alias="minSamples", ge=1)


class Toleration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: int | None = None


class ResourcesSpec(_SpecModel):
    requests: dict[str, int | str] = Field(default_factory=dict)
    limits: dict[str, int | str] = Field(default_factory=dict)


class PoolSpec(_SpecModel):
    replicas: int = Field(default=1, ge=0, le=100)
    workers: int = Field(default=4, ge=1, le=256)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    node_selector: dict[str, str] = Field(default_factory=dict, alias="nodeSelector")
    tolerations: tuple[Toleration, ...] = ()


class GpuPoolSpec(PoolSpec):
    replicas: int = Field(default=0, ge=0, le=100)
    workers: int = Field(default=1, ge=1, le=256)
    device: GpuDevice = "cuda"


class PoolsSpec(_SpecModel):
    cpu: PoolSpec = Field(default_factory=PoolSpec)
    gpu: GpuPoolSpec = Field(default_factory=GpuPoolSpec)


class RouterSpec(_SpecModel):
    replicas: int = Field(default=1, ge=1, le=20)


class KnobBounds(_SpecModel):
    min_items: int = Field(alias="min", ge=1)
    max_items: int = Field(alias="max", ge=1)
    initial_items: int = Field(alias="initial", ge=1)


def _default_batch_bounds() -> KnobBounds:
    return KnobBounds.model_validate({"min": 1, "max": MAX_QUERY_ITEMS, "initial": 64})


def _default_threshold_bounds() -> KnobBounds:
    return KnobBounds.model_validate(
        {"min": 1, "max": NO_OFFLOAD_THRESHOLD, "initial": NO_OFFLOAD_THRESHOLD}
    )


class TuningSpec(_SpecModel):
    mode: TuningMode = "auto"
    interval_s: int = Field(default=30, alias="intervalSeconds", ge=1, le=3600)
    cooldown_s: int = Field(default=60, alias="cooldownSeconds", ge=0, le=3600)
    batch_size: KnobBounds = Field(default_factory=_default_batch_bounds, alias="batchSize")
    offload_threshold: KnobBounds = Field(
        default_factory=_default_threshold_bounds, alias="offloadThreshold"
    )


class RecModelSpec(_SpecModel):
    model: ModelSpec
    slo: SloSpec
    pools: PoolsSpec = Field(default_factory=PoolsSpec)
    router: RouterSpec = Field(default_factory=RouterSpec)
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    prometheus_url: str | None = Field(default=None, alias="prometheusUrl", pattern=r"^https?://")


def _check_bounds(bounds: KnobBounds, field: str) -> None:
    if bounds.min_items > bounds.max_items:
        raise InvalidSpecError(f"{field}.min", f"min {bounds.min_items} > max {bounds.max_items}")
    if not bounds.min_items <= bounds.initial_items <= bounds.max_items:
        raise InvalidSpecError(
            f"{field}.initial",
            f"initial {bounds.initial_items} outside [{bounds.min_items}, {bounds.max_items}]",
        )


def _field_path(loc: tuple[int | str, ...], aliases: Mapping[str, str]) -> str:
    return "spec." + ".".join(aliases.get(str(part), str(part)) for part in loc)


_ALIASES = {
    "target_ms": "targetMs",
    "window_s": "windowSeconds",
    "min_samples": "minSamples",
    "node_selector": "nodeSelector",
    "interval_s": "intervalSeconds",
    "cooldown_s": "cooldownSeconds",
    "batch_size": "batchSize",
    "offload_threshold": "offloadThreshold",
    "prometheus_url": "prometheusUrl",
}


def parse_spec(raw_spec: Mapping[str, Any]) -> RecModelSpec:
    """Parse and check a RecModel spec; raise `InvalidSpecError` naming the first bad field."""
    try:
        spec = RecModelSpec.model_validate(dict(raw_spec))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidSpecError(_field_path(tuple(first["loc"]), _ALIASES), first["msg"]) from exc
    _check_bounds(spec.tuning.batch_size, "spec.tuning.batchSize")
    _check_bounds(spec.tuning.offload_threshold, "spec.tuning.offloadThreshold")
    if spec.pools.cpu.replicas == 0 and spec.pools.gpu.replicas == 0:
        raise InvalidSpecError("spec.pools", "at least one pool needs replicas > 0")
    return spec
