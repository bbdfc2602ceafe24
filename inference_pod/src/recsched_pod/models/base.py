"""The interface every model of the zoo implements.

The server only sees this: a module with a `spec` and `forward(dense, sparse) -> scores`. Models are
shared by several worker threads at once under `torch.inference_mode()`, so `forward` is a pure
function of its inputs and the weights: it never writes module state. Items are independent, so
scoring a query whole or as consecutive slices gives the same scores (up to float rounding).
"""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from recsched_pod.models.layers import TableBatchedEmbeddingBag
from recsched_pod.models.spec import ModelInputSpec


class RecommendationModel(nn.Module):
    """Base of the eight models: scores N items from dense and sparse features.

    `dense` is FP32 [N, spec.dense_features], or None for models without dense input (they ignore
    it); `sparse` is INT64 [N, T, L]; the result is FP32 [N, spec.output_width]. All tables live in
    `embeddings` (one `TableBatchedEmbeddingBag`, tables in spec order).
    """

    spec: ModelInputSpec
    embeddings: TableBatchedEmbeddingBag

    def __init__(self, spec: ModelInputSpec) -> None:
        super().__init__()
        self.spec = spec

    def forward(self, dense: Tensor | None, sparse: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, dense: Tensor | None, sparse: Tensor) -> Tensor:
        # Typed wrapper over nn.Module.__call__ (which returns Any), so callers get a Tensor.
        return cast(Tensor, super().__call__(dense, sparse))

    def require_dense(self, dense: Tensor | None) -> Tensor:
        if dense is None:
            raise ValueError(
                f"model {self.spec.name} needs dense_features of width {self.spec.dense_features}",
            )
        return dense
