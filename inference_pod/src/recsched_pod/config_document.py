"""The live config document shared by router and pods (DESIGN.md section 3).

One JSON object, versioned by `generation`. The router reads `offloadThreshold`; pods read
`batchSize` and `workers`. Unknown fields are kept, so a newer tuner can add fields without breaking
older pods. A document with a generation older than the one being served is ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
