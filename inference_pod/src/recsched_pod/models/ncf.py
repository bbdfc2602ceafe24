"""NCF (neural collaborative filtering) as released in DeepRecSys.

```
sparse [N, 4, 1] --> 4 tables (dim 64), one lookup each
   tables 0, 1  GMF path: e0 + e1 ------------------------------> [N, 64] --.
   tables 2, 3  MLP path: concat [N, 128] --> MLP 256-256-128-64 -> [N, 64] --+ concat
                                                                             |  [N, 128]
                        scores [N, 64] <-- FC 128 -> 64 (ReLU) <-------------'
```

Tables (paper rows): 140,000 and 140,000 (GMF), 28,000 and 28,000 (MLP), dim 64, one lookup each.
No dense input. Deliberate choices, both from the released code:

* The GMF path combines its two embeddings with an elementwise **sum** (Caffe2 `Sum`), where the
  NCF paper multiplies them. Option `gmf_combine="product"` builds the original NCF product; the
  cost is the same.
* The model outputs a **64-wide** ReLU vector, not one score: the released final FC is 128 -> 64.
  `output_width` is 64 and we keep it, since the point is to reproduce the served compute.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recsched_pod.models.base import RecommendationModel
from recsched_pod.models.configs import NcfConfig
from recsched_pod.models.layers import MultiLayerPerceptron, TableBatchedEmbeddingBag


class NeuralCollaborativeFiltering(RecommendationModel):
    """NCF: GMF path (tables 0-1) and MLP path (tables 2-3) fused by one final FC."""

    def __init__(self, config: NcfConfig, scale: float, generator: torch.Generator) -> None:
        super().__init__(config.input_spec(scale))
        dim = config.embedding_dim
        self.gmf_combine = config.gmf_combine
        self.embeddings = TableBatchedEmbeddingBag(self.spec.table_rows, dim, generator)
        self.mlp_path = MultiLayerPerceptron(2 * dim, config.mlp, "relu", generator)
        fused_width = dim + config.mlp[-1]
        self.final_layer = MultiLayerPerceptron(
            fused_width, (config.final_width,), "relu", generator
        )

    def forward(self, dense: Tensor | None, sparse: Tensor) -> Tensor:
        pooled = self.embeddings(sparse)
        gmf = self.gmf_path(pooled[:, 0], pooled[:, 1])
        mlp = self.mlp_path(pooled[:, 2:4].flatten(start_dim=1))
        scores: Tensor = self.final_layer(torch.cat((gmf, mlp), dim=1))
        return scores

    def gmf_path(self, user: Tensor, item: Tensor) -> Tensor:
        return user * item if self.gmf_combine == "product" else user + item
