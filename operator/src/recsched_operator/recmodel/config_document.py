"""The live config document on the operator's side (DESIGN.md section 3), in one module.

The document is the only thing tuning changes: `{"generation", "batchSize", "offloadThreshold",
"workers"}`, ordered by `generation`. This module owns everything the operator does with it:
building it (`initial_config`, `config_for_spec`, `ConfigDocument.next`), serialising it (the JSON
object pushed to pods, the ConfigMap, local mode's file) and parsing it back (the ConfigMap, a
resumed local run's file), with validation that names the field. The pod validates the same wire
format in `recsched_pod.config_document`; `tests/contracts/test_config_document_contract.py`
feeds each side what the other writes, so the two cannot drift apart.

Inside the operator it is a frozen dataclass; the pydantic model below is only the boundary.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsched_operator.errors import RecSchedOperatorError
from recsched_operator.recmodel.api import NO_OFFLOAD_THRESHOLD, KnobBounds, RecModelSpec
from recsched_operator.recmodel.naming import CONFIG_KEY, Owner, child_metadata, configmap_name


class ConfigDocumentError(RecSchedOperatorError):
    """A config document that cannot be read; the message names the source and the field."""


@dataclass(frozen=True)
class ConfigDocument:
    """The live config: what pods serve, ordered by generation."""

    generation: int
    batch_size: int
    offload_threshold: int
    workers: int

    def to_json_dict(self) -> dict[str, int]:
        """The wire format: what `PUT /admin/config` carries and the ConfigMap holds."""
        return {
            "generation": self.generation,
            "batchSize": self.batch_size,
            "offloadThreshold": self.offload_threshold,
            "workers": self.workers,
        }

    def to_json(self) -> str:
        """The document as the text of a file (the ConfigMap's key, local mode's config file)."""
        return json.dumps(self.to_json_dict(), sort_keys=True)

    def next(self, *, batch_size: int, offload_threshold: int) -> ConfigDocument:
        """The tuner's change: new knobs under the next generation; workers come from the spec."""
        return replace(
            self,
            generation=self.generation + 1,
            batch_size=batch_size,
            offload_threshold=offload_threshold,
        )


class _WireDocument(BaseModel):
    """The boundary check: the four fields as the pod requires them (unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    generation: int = Field(ge=0)
    batch_size: int = Field(ge=1, alias="batchSize")
    offload_threshold: int = Field(ge=1, alias="offloadThreshold")
    workers: int = Field(ge=1)


def parse_config_document(raw: str | bytes | Mapping[str, Any], source: str) -> ConfigDocument:
    """A document from JSON text or an already decoded object; `ConfigDocumentError` otherwise."""
    try:
        payload = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except ValueError as error:
        raise ConfigDocumentError(f"{source}: not valid JSON: {error}") from None
    if not isinstance(payload, Mapping):
        raise ConfigDocumentError(f"{source}: the config document must be a JSON object")
    try:
        wire = _WireDocument.model_validate(dict(payload))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
            for issue in error.errors()
        )
        raise ConfigDocumentError(f"{source}: invalid config document: {problems}") from None
    return ConfigDocument(wire.generation, wire.batch_size, wire.offload_threshold, wire.workers)


def render_configmap(owner: Owner, config: ConfigDocument) -> dict[str, Any]:
    """The ConfigMap pods mount as their `--config` file."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(owner, configmap_name(owner.name), component="config"),
        "data": {CONFIG_KEY: config.to_json()},
    }


def config_from_configmap(configmap: Mapping[str, Any]) -> ConfigDocument:
    """The document a ConfigMap read from the API holds (`render_configmap`'s inverse)."""
    name = (configmap.get("metadata") or {}).get("name", "ConfigMap")
    data = configmap.get("data") or {}
    if CONFIG_KEY not in data:
        raise ConfigDocumentError(f"ConfigMap {name}: no {CONFIG_KEY!r} key")
    return parse_config_document(str(data[CONFIG_KEY]), f"ConfigMap {name}")


def initial_config(spec: RecModelSpec) -> ConfigDocument:
    """Generation 1: the spec's initial knobs (no offload at all without a GPU pool)."""
    threshold = (
        spec.tuning.offload_threshold.initial_items
        if spec.pools.gpu.replicas > 0
        else NO_OFFLOAD_THRESHOLD
    )
    return ConfigDocument(
        generation=1,
        batch_size=spec.tuning.batch_size.initial_items,
        offload_threshold=threshold,
        workers=spec.pools.cpu.workers,
    )


def _clamp(value: int, bounds: KnobBounds) -> int:
    return max(bounds.min_items, min(bounds.max_items, value))


def config_for_spec(
    spec: RecModelSpec, applied: ConfigDocument | Mapping[str, Any] | None
) -> ConfigDocument:
    """The config to serve after a spec change: keep tuned knobs, clamped into the new bounds.

    `applied` is what is served now (a document, or its wire form); none, or one that does not
    parse, starts from the spec's initial knobs. The generation only moves when a knob changes,
    so an unrelated spec edit pushes nothing.
    """
    if isinstance(applied, Mapping):
        try:
            applied = parse_config_document(applied, "the served config")
        except ConfigDocumentError:
            applied = None
    if applied is None:
        return initial_config(spec)
    batch = _clamp(applied.batch_size, spec.tuning.batch_size)
    threshold = (
        _clamp(applied.offload_threshold, spec.tuning.offload_threshold)
        if spec.pools.gpu.replicas > 0
        else NO_OFFLOAD_THRESHOLD
    )
    served = ConfigDocument(applied.generation, batch, threshold, spec.pools.cpu.workers)
    if served == applied:
        return served
    return replace(served, generation=applied.generation + 1)
