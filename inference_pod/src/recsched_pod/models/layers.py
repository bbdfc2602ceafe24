"""Building blocks shared by the zoo's models, with the released code's initialisation.

* `TableBatchedEmbeddingBag` keeps all of a model's tables in one `nn.EmbeddingBag(mode="sum")`
  and shifts each table's indices by its first row, so T tables cost one lookup kernel instead of
  a Python loop of T (DIN has 253 tables). Memory and per-table semantics are unchanged.
* `MultiLayerPerceptron` is a stack of `nn.Linear`, ReLU between layers, a chosen last activation.
* `GroupedLinear` applies G independent linear layers to G slices in one batched matmul (DIN's
  per-behaviour attention units).

Initialisation follows the released Caffe2 code, drawn from one `torch.Generator` in construction
order so a seed fixes every weight: FC weights normal(0, sqrt(2 / (fan_in + fan_out))), FC biases
normal(0, sqrt(1 / fan_out)), embedding rows uniform(+-sqrt(1 / rows of that table)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

Activation = Literal["relu", "sigmoid", "softmax"]


def xavier_normal_(weight: Tensor, fan_in: int, fan_out: int, generator: torch.Generator) -> None:
    weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)


def bias_normal_(bias: Tensor, fan_out: int, generator: torch.Generator) -> None:
    bias.normal_(0.0, math.sqrt(1.0 / fan_out), generator=generator)


def make_linear(in_features: int, out_features: int, generator: torch.Generator) -> nn.Linear:
    """An `nn.Linear` with the released code's Xavier-style normal initialisation."""
    layer = nn.Linear(in_features, out_features)
    with torch.no_grad():
        xavier_normal_(layer.weight, in_features, out_features, generator)
        bias_normal_(layer.bias, out_features, generator)
    return layer


def apply_activation(x: Tensor, activation: Activation) -> Tensor:
    """ReLU, sigmoid, or softmax over the last axis (one distribution per item)."""
    if activation == "relu":
        return torch.relu(x)
    if activation == "sigmoid":
        return torch.sigmoid(x)
    return torch.softmax(x, dim=-1)


class TableBatchedEmbeddingBag(nn.Module):
    """T sum-pooled embedding tables of one width, looked up together.

    Input INT64 [N, T, L] (index < table_rows[t] for table t), output FP32 [N, T, dim]: entry
    [n, t] is the sum of table t's rows at indices [n, t, :]. An index out of its table's range
    would read a neighbouring table, so the server checks ranges against the spec first.
    """

    table_first_row: Tensor  # [T, 1]: row of the concatenated weight where table t starts

    def __init__(self, table_rows: Sequence[int], dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.table_rows = tuple(table_rows)
        self.dim = dim
        first_rows = [0]
        for rows in self.table_rows[:-1]:
            first_rows.append(first_rows[-1] + rows)
        weight = torch.empty(sum(self.table_rows), dim)
        for first, rows in zip(first_rows, self.table_rows, strict=True):
            bound = math.sqrt(1.0 / rows)
            weight[first : first + rows].uniform_(-bound, bound, generator=generator)
        # from_pretrained adopts the tensor as is: no second, discarded initialisation of GBs.
        self.bag = nn.EmbeddingBag.from_pretrained(weight, freeze=True, mode="sum")
        self.register_buffer(
            "table_first_row",
            torch.tensor(first_rows, dtype=torch.int64).view(-1, 1),
            persistent=False,
        )

    def forward(self, indices: Tensor) -> Tensor:
        items, tables, lookups = indices.shape
        global_rows = (indices + self.table_first_row).view(items * tables, lookups)
        pooled: Tensor = self.bag(global_rows)
        return pooled.view(items, tables, self.dim)


class MultiLayerPerceptron(nn.Module):
    """`nn.Linear` layers of the given output widths, ReLU after each but the last."""

    def __init__(
        self,
        input_width: int,
        widths: Sequence[int],
        last_activation: Activation,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        in_widths = (input_width, *widths[:-1])
        self.layers = nn.ModuleList(
            make_linear(n_in, n_out, generator)
            for n_in, n_out in zip(in_widths, widths, strict=True)
        )
        self.last_activation: Activation = last_activation
        self.output_width = widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.layers) - 1
        for position, layer in enumerate(self.layers):
            x = layer(x)
            x = torch.relu(x) if position < last else apply_activation(x, self.last_activation)
        return x


class GroupedLinear(nn.Module):
    """G independent linear layers: input [G, N, in] -> output [G, N, out] in one `baddbmm`."""

    def __init__(
        self, groups: int, in_features: int, out_features: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(groups, 1, out_features))
        with torch.no_grad():
            xavier_normal_(self.weight, in_features, out_features, generator)
            bias_normal_(self.bias, out_features, generator)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)
