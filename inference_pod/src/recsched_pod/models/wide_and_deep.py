"""Wide and Deep (WnD) and its multi-task variant (MT-WnD), as in DeepRecSys.

WnD:
```
dense [N, 512] (raw, no bottom MLP) -----------------------------.
                                                                 | concat
sparse [N, 27, 1] --> 27 tables (dim 32) --> [N, 27 x 32] -------+--> [N, 1376]
                                                                        |
                       scores [N, 1] <-- MLP 1024-512-256-1 (ReLU .. sigmoid)
```

MT-WnD:
```
dense [N, 512] + sparse [N, 43, 1] --> concat [N, 512 + 43 x 32 = 1888]
    --> shared MLP 1024-512 (ReLU)
    --> per task t: tower 256-128 (ReLU) --> FC 128 -> 1 (sigmoid) --> score_t
    --> scores [N, tasks] (column t = task t)
```

Tables (paper rows): WnD 27 x 1,000,000; MT-WnD 41 x 500,000 + 2 x 5,000,000; dim 32, one
lookup each. There is no separate linear "wide" path in the released code: wide and deep features
are concatenated into one deep MLP, and so here.

MT-WnD task heads (paper intent, option `tasks`, default 3). The released code builds
`num_multi_tasks` towers, whose CLI default 1 the config never overrides, so it ran one tower; the
paper describes N parallel task towers. Each released tower is 512-256-128 and ends in 128 sigmoid
units (an accident of where its sigmoid index falls), not a score. We build `tasks` towers of
512-256-128 with ReLU, each followed by one 128 -> 1 sigmoid layer, so each task yields one
probability and the output is [N, tasks]. Default 3 stands for a typical multi-objective ranker
(e.g. click, like, share); the added 128 -> 1 layers cost 128 MACs per task. The towers run in a
Python loop over tasks: a handful of GEMMs of 512+ columns each, which vectorise well already.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recsched_pod.models.base import RecommendationModel
from recsched_pod.models.configs import MultiTaskWideAndDeepConfig, WideAndDeepConfig
from recsched_pod.models.layers import MultiLayerPerceptron, TableBatchedEmbeddingBag


def concat_wide_and_deep(dense: Tensor, pooled: Tensor) -> Tensor:
    """Raw dense features then every pooled embedding: [N, D] and [N, T, dim] -> [N, D + T dim]."""
    return torch.cat((dense, pooled.flatten(start_dim=1)), dim=1)


class WideAndDeep(RecommendationModel):
    """WnD: concat of raw dense features and pooled embeddings into one deep MLP."""

    def __init__(self, config: WideAndDeepConfig, scale: float, generator: torch.Generator) -> None:
        super().__init__(config.input_spec(scale))
        self.embeddings = TableBatchedEmbeddingBag(
            self.spec.table_rows, config.embedding_dim, generator
        )
        input_width = config.dense_input + self.spec.num_tables * config.embedding_dim
        self.deep_mlp = MultiLayerPerceptron(input_width, config.top_mlp, "sigmoid", generator)

    def forward(self, dense: Tensor | None, sparse: Tensor) -> Tensor:
        pooled = self.embeddings(sparse)
        features = concat_wide_and_deep(self.require_dense(dense), pooled)
        scores: Tensor = self.deep_mlp(features)
        return scores


class TaskHead(nn.Module):
    """One MT-WnD task: a ReLU tower, then a single sigmoid score."""

    def __init__(
        self, input_width: int, tower: tuple[int, ...], generator: torch.Generator
    ) -> None:
        super().__init__()
        self.tower = MultiLayerPerceptron(input_width, tower, "relu", generator)
        self.score = MultiLayerPerceptron(tower[-1], (1,), "sigmoid", generator)

    def forward(self, shared: Tensor) -> Tensor:
        score: Tensor = self.score(self.tower(shared))
        return score


class MultiTaskWideAndDeep(RecommendationModel):
    """MT-WnD: WnD's input and a shared MLP, then one tower and one score per task."""

    def __init__(
        self, config: MultiTaskWideAndDeepConfig, scale: float, generator: torch.Generator
    ) -> None:
        super().__init__(config.input_spec(scale))
        self.embeddings = TableBatchedEmbeddingBag(
            self.spec.table_rows, config.embedding_dim, generator
        )
        input_width = config.dense_input + self.spec.num_tables * config.embedding_dim
        self.shared_mlp = MultiLayerPerceptron(input_width, config.shared_mlp, "relu", generator)
        self.task_heads = nn.ModuleList(
            TaskHead(config.shared_mlp[-1], config.task_mlp, generator) for _ in range(config.tasks)
        )

    def forward(self, dense: Tensor | None, sparse: Tensor) -> Tensor:
        pooled = self.embeddings(sparse)
        features = concat_wide_and_deep(self.require_dense(dense), pooled)
        shared = self.shared_mlp(features)
        return torch.cat([head(shared) for head in self.task_heads], dim=1)
