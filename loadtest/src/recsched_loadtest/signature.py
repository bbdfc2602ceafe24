"""What a model takes, learnt from its OIP v2 metadata (`GET /v2/models/{m}`) (pure).

The load test never imports the pod: this module is the client side of the metadata contract
(DESIGN.md section 3) and fails with a message naming the field when the contract is broken.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recsched_loadtest.errors import EndpointError

DENSE_INPUT = "dense_features"
SPARSE_INPUT = "sparse_indices"
SCORES_OUTPUT = "scores"


@dataclass(frozen=True)
class ModelSignature:
    name: str
    dense_features: int  # D; 0 when the model has no dense input
    table_rows: tuple[int, ...]
    lookups_per_table: int  # L
    output_width: int  # K
    max_query_items: int

    @property
    def num_tables(self) -> int:
        return len(self.table_rows)

    @property
    def bytes_per_item(self) -> int:
        return 4 * self.dense_features + 8 * self.num_tables * self.lookups_per_table


def _tensor(entries: Any, name: str, field: str) -> Mapping[str, Any] | None:
    if not isinstance(entries, list):
        raise EndpointError(f"metadata field {field!r} must be a list")
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return entry
    return None


def _shape(entry: Mapping[str, Any], rank: int, name: str) -> list[int]:
    shape = entry.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != rank
        or not all(isinstance(dim, int) for dim in shape)
    ):
        raise EndpointError(f"metadata: {name}.shape must be {rank} integers, got {shape!r}")
    if any(dim < 1 for dim in shape[1:]):
        raise EndpointError(f"metadata: {name}.shape has a non-positive inner dimension: {shape}")
    return shape


def _table_rows(parameters: Mapping[str, Any], tables: int) -> tuple[int, ...]:
    raw = parameters.get("table_rows")
    try:
        if isinstance(raw, str):
            rows = tuple(int(part) for part in raw.split(",") if part.strip())
        elif isinstance(raw, list):
            rows = tuple(int(part) for part in raw)
        else:
            raise ValueError
    except ValueError as exc:
        raise EndpointError(
            f"metadata: parameters.table_rows must be comma-separated integers, got {raw!r}"
        ) from exc
    if len(rows) != tables or any(row < 1 for row in rows):
        raise EndpointError(
            f"metadata: parameters.table_rows has {len(rows)} positive entries, "
            f"sparse_indices has {tables} tables"
        )
    return rows


def parse_model_metadata(
    metadata: Mapping[str, Any], default_max_items: int = 1024
) -> ModelSignature:
    """Build the signature from the metadata JSON document."""
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise EndpointError("metadata: 'name' is missing")
    sparse = _tensor(metadata.get("inputs"), SPARSE_INPUT, "inputs")
    if sparse is None:
        raise EndpointError(f"metadata: input {SPARSE_INPUT!r} is missing")
    _, tables, lookups = _shape(sparse, 3, SPARSE_INPUT)
    dense = _tensor(metadata.get("inputs"), DENSE_INPUT, "inputs")
    dense_features = _shape(dense, 2, DENSE_INPUT)[1] if dense is not None else 0
    scores = _tensor(metadata.get("outputs", []), SCORES_OUTPUT, "outputs")
    output_width = _shape(scores, 2, SCORES_OUTPUT)[1] if scores is not None else 1
    parameters = metadata.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise EndpointError("metadata: 'parameters' must be an object")
    try:
        max_items = int(parameters.get("max_query_items", default_max_items))
    except (TypeError, ValueError) as exc:
        raise EndpointError("metadata: parameters.max_query_items must be an integer") from exc
    return ModelSignature(
        name=name,
        dense_features=dense_features,
        table_rows=_table_rows(parameters, tables),
        lookups_per_table=lookups,
        output_width=output_width,
        max_query_items=max(1, max_items),
    )
