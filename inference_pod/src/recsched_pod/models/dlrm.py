"""DLRM-RMC1, RMC2 and RMC3: Facebook's DLRM with the released DeepRecSys configs.

```
dense [N, D] ------> bottom MLP (ReLU) ----------> [N, dim] --------------.
                                                                          |  concat
sparse [N, T, L] --> T sum-pooled tables ---------> [N, T, dim] --flatten--+--> [N, (T+1) x dim]
                                                                                   |
                                                   scores [N, 1] <-- top MLP (ReLU .. sigmoid)
```

| model | D    | bottom MLP      | tables x rows (paper) | dim | L   | top MLP         |
|-------|------|-----------------|-----------------------|-----|-----|-----------------|
| rmc1  | 128  | 64-32           | 8 x 4,000,000         | 32  | 80  | 288-256-64-1    |
| rmc2  | 256  | 128-64          | 32 x 500,000          | 64  | 120 | 2112-128-64-1   |
| rmc3  | 2560 | 1024-256-32     | 10 x 2,000,000        | 32  | 20  | 352-512-256-1   |

The interaction is concatenation (`arch_interaction_op: cat` in every released config), not DLRM's
dot product. RMC1 and RMC2 are embedding-bound, RMC3 is MLP-bound (facts section 1.3).
"""

from __future__ import annotations

import torch
from torch import Tensor

from recsched_pod.models.base import RecommendationModel
from recsched_pod.models.configs import DlrmConfig
from recsched_pod.models.layers import MultiLayerPerceptron, TableBatchedEmbeddingBag


class Dlrm(RecommendationModel):
    """DLRM with concat interaction; one class for RMC1-3, which differ only in numbers."""

    def __init__(self, config: DlrmConfig, scale: float, generator: torch.Generator) -> None:
        super().__init__(config.input_spec(scale))
        self.embeddings = TableBatchedEmbeddingBag(
            self.spec.table_rows, config.embedding_dim, generator
        )
        self.bottom_mlp = MultiLayerPerceptron(
            config.dense_input, config.bottom_mlp, "relu", generator
        )
        interaction_width = (self.spec.num_tables + 1) * config.embedding_dim
        self.top_mlp = MultiLayerPerceptron(interaction_width, config.top_mlp, "sigmoid", generator)

    def forward(self, dense: Tensor | None, sparse: Tensor) -> Tensor:
        dense_embedding = self.bottom_mlp(self.require_dense(dense))
        pooled = self.embeddings(sparse)
        interaction = self.interact(dense_embedding, pooled)
        scores: Tensor = self.top_mlp(interaction)
        return scores

    @staticmethod
    def interact(dense_embedding: Tensor, pooled: Tensor) -> Tensor:
        """Concat interaction: [N, dim] and [N, T, dim] -> [N, (T+1) x dim], dense first."""
        return torch.cat((dense_embedding, pooled.flatten(start_dim=1)), dim=1)
