"""Random queries shaped by a `ModelInputSpec`, for warm-up, benchmarks and tests.

As in DeepRecInfra's generator: dense features uniform in [0, 1); sparse indices uniform over each
table's rows and distinct within a bag. Drawing is vectorised (no loop over items or tables) and
depends only on the generator, so a seed fixes the query.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recsched_pod.models.spec import ModelInputSpec


def random_query(
    spec: ModelInputSpec, items: int, generator: torch.Generator
) -> tuple[Tensor | None, Tensor]:
    """Dense FP32 [items, D] (None without dense input) and sparse INT64 [items, T, L].

    Distinct indices per bag come from L sorted uniform draws over [0, rows - L] shifted by 0..L-1,
    so a bag's indices are distinct and ascending (order does not change a sum). Tables with fewer
    rows than L lookups draw with replacement instead.
    """
    if items < 0:
        raise ValueError(f"items must be >= 0, got {items}")
    dense = (
        torch.rand(spec.dense_shape(items), generator=generator, dtype=torch.float32)
        if spec.has_dense
        else None
    )
    return dense, random_sparse_indices(spec, items, generator)


def random_sparse_indices(spec: ModelInputSpec, items: int, generator: torch.Generator) -> Tensor:
    lookups = spec.lookups_per_table
    # float64 draws so even 10M-row tables reach every row.
    draws = torch.rand(spec.sparse_shape(items), generator=generator, dtype=torch.float64)
    rows = torch.tensor(spec.table_rows, dtype=torch.float64).view(-1, 1)
    if min(spec.table_rows) < lookups:
        return (draws * rows).floor().to(torch.int64)
    starts = (draws * (rows - lookups + 1)).floor().to(torch.int64)
    if lookups == 1:
        return starts
    return starts.sort(dim=2).values + torch.arange(lookups, dtype=torch.int64)
