"""The live config document shared by router and pods (DESIGN.md section 3), in one module.

One JSON object, versioned by `generation`. The router reads `offloadThreshold`; pods read
`batchSize` and `workers`. Unknown fields are kept, so a newer tuner can add fields without breaking
older pods. A document with a generation older than the one being served is ignored (`live_config`).

This module owns the pod's side of the wire format: the model, `parse_config_document` (JSON bytes
to a validated document, errors naming the field) and `to_json_dict` (what `GET /admin/config`
answers). Everything that reads a document (the `--config` file, `PUT /admin/config`) goes through
it; the operator writes the same format (`recsched_operator.recmodel.config_document`), and
`tests/contracts/test_config_document_contract.py` checks each side against the other. It imports
nothing of the pod's HTTP layer: callers turn `ConfigDocumentError` into a 400 or a file error.
"""

from __future__ import annotations

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigDocumentError(ValueError):
    """A document that is not valid JSON, not an object, or fails validation; names the field."""


class ConfigDocument(BaseModel):
    """The knobs DeepRecSched tunes, plus the generation that orders updates."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    generation: int = Field(
        default=0, ge=0, description="Monotonic version; older ones are ignored."
    )
    batch_size: int = Field(
        default=64,
        ge=1,
        le=4096,
        alias="batchSize",
        description="Items per request when a CPU pod splits a query (B).",
    )
    offload_threshold: int = Field(
        default=1025,
        ge=1,
        alias="offloadThreshold",
        description="Queries of at least this many items go whole to the GPU pool (T).",
    )
    workers: int = Field(default=1, ge=1, le=256, description="Model worker threads per pod.")

    def to_json_dict(self) -> dict[str, object]:
        return self.model_dump(by_alias=True)


def parse_config_document(raw: bytes | bytearray | str, source: str) -> ConfigDocument:
    """Parse and validate a config document; the error names the field and the source."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ConfigDocumentError(f"{source}: not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise ConfigDocumentError(f"{source}: the config document must be a JSON object")
    try:
        return ConfigDocument.model_validate(payload)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
            for issue in error.errors()
        )
        raise ConfigDocumentError(f"{source}: invalid config document: {problems}") from None
