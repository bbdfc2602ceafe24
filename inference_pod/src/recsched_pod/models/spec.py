"""What a model takes and returns, independent of torch.

The server validates queries against a `ModelInputSpec`, the metadata endpoint publishes it, and the
load generator learns it from there. It is a frozen dataclass so it can be shared freely between
worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass

DENSE_INPUT = "dense_features"
SPARSE_INPUT = "sparse_indices"
SCORES_OUTPUT = "scores"

OptionValue = int | str
"""Type of an architecture option's value (`tasks=3`, `recurrent="gru"`)."""


@dataclass(frozen=True)
class ModelInputSpec:
    """Inputs of one query of N items and the shape of its output.

    `dense_features` is FP32 [N, dense_features] (absent when `dense_features == 0`);
    `sparse_indices` is INT64 [N, T, L] with T = len(table_rows) and L = lookups_per_table;
    index j of table t must lie in [0, table_rows[t]). The output `scores` is FP32
    [N, output_width].

    `options` records the architecture options the model was built with, defaults included, as
    sorted (name, value) pairs (e.g. `(("tasks", 3),)` for MT-WnD), so metadata says which variant
    runs. `scale` is the embedding-row scale (1.0 = the paper's tables); None when not built from
    the zoo.
    """

    name: str
    dense_features: int
    table_rows: tuple[int, ...]
    lookups_per_table: int
    output_width: int
    options: tuple[tuple[str, OptionValue], ...] = ()
    scale: float | None = None

    @property
    def num_tables(self) -> int:
        return len(self.table_rows)

    @property
    def has_dense(self) -> bool:
        return self.dense_features > 0

    @property
    def options_dict(self) -> dict[str, OptionValue]:
        return dict(self.options)

    def dense_shape(self, items: int) -> tuple[int, int]:
        """Shape of `dense_features` for a query of `items` items."""
        return (items, self.dense_features)

    def sparse_shape(self, items: int) -> tuple[int, int, int]:
        """Shape of `sparse_indices` for a query of `items` items."""
        return (items, self.num_tables, self.lookups_per_table)

    def output_shape(self, items: int) -> tuple[int, int]:
        """Shape of `scores` for a query of `items` items."""
        return (items, self.output_width)

    @property
    def embedding_rows(self) -> int:
        """Rows over all tables: embedding memory is this x dim x 4 bytes."""
        return sum(self.table_rows)
