"""The function a worker calls to score a request: the model traced to TorchScript, or eager.

Why trace: an eager PyTorch forward pass returns to Python between operators and takes the GIL
back each time, so a worker thread stalls whenever the event loop thread (HTTP, decoding) holds
the GIL, for up to the switch interval per operator. RMC1 runs a few dozen small operators per
request, so on this project's 2-core machine eager RMC1 at B = 128 ran at 0.20x its speed beside
a busy Python thread, the traced graph at 0.64x (WnD 0.65x vs 0.90x; docs/benchmarks/pod.md): a
TorchScript call runs the whole graph without the GIL. Scores are the same function of the same
weights (the trace shares the module's parameters, so no memory is duplicated).

A trace records one execution, so it is only used after it matched the eager model on fresh
random queries of several sizes (different from the traced one); otherwise, or when tracing
fails, the pod serves the eager model and logs why. `graph_mode="eager"` turns tracing off.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from recsched_pod.models import RecommendationModel, random_query
from recsched_pod.settings import GraphMode

logger = logging.getLogger(__name__)

Scorer = Callable[[Tensor | None, Tensor], Tensor]

TRACE_ITEMS = 8
CHECK_ITEMS: tuple[int, ...] = (1, 3, 37)
"""Sizes the trace must reproduce the eager scores at, none of them the traced size."""


@dataclass(frozen=True)
class ServingGraph:
    scorer: Scorer
    mode: GraphMode
    reason: str


class _SparseOnly(nn.Module):
    """Models without dense input take `None` for it, which a trace cannot carry."""

    def __init__(self, model: RecommendationModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, sparse: Tensor) -> Tensor:
        return self.model(None, sparse)


def serving_graph(
    model: RecommendationModel,
    device: torch.device,
    mode: GraphMode = "traced",
    seed: int = 0,
    check_items: Sequence[int] = CHECK_ITEMS,
) -> ServingGraph:
    """The scorer workers should call for `model` (already on `device`, in eval mode)."""
    if mode == "eager":
        return ServingGraph(model, "eager", "graph_mode=eager")
    generator = torch.Generator().manual_seed(seed)
    try:
        scorer = _trace(model, device, generator)
        mismatch = _first_mismatch(model, scorer, device, generator, check_items)
    except Exception as error:  # any tracing failure falls back to the model as written
        logger.warning("model %s serves eager: tracing failed: %s", model.spec.name, error)
        return ServingGraph(model, "eager", f"tracing failed: {error}")
    if mismatch is not None:
        logger.warning("model %s serves eager: %s", model.spec.name, mismatch)
        return ServingGraph(model, "eager", mismatch)
    return ServingGraph(scorer, "traced", f"trace matched eager at {list(check_items)} items")


def _trace(model: RecommendationModel, device: torch.device, generator: torch.Generator) -> Scorer:
    dense, sparse = _query(model, TRACE_ITEMS, device, generator)
    with warnings.catch_warnings(), torch.inference_mode():
        # torch.jit.trace is deprecated in favour of torch.compile/export, neither of which
        # gives a GIL-free call without a compiler toolchain; the trace is checked below.
        warnings.filterwarnings("ignore", message=".*is deprecated.*")
        warnings.filterwarnings("ignore", message=".*might cause the trace to be incorrect.*")
        if dense is None:
            traced_sparse = torch.jit.trace(  # type: ignore[no-untyped-call]
                _SparseOnly(model), (sparse,), check_trace=False
            )

            def sparse_only(_: Tensor | None, sparse: Tensor) -> Tensor:
                return cast(Tensor, traced_sparse(sparse))

            return sparse_only
        traced = torch.jit.trace(  # type: ignore[no-untyped-call]
            model, (dense, sparse), check_trace=False
        )

        def with_dense(dense: Tensor | None, sparse: Tensor) -> Tensor:
            return cast(Tensor, traced(dense, sparse))

        return with_dense


def _first_mismatch(
    model: RecommendationModel,
    scorer: Scorer,
    device: torch.device,
    generator: torch.Generator,
    check_items: Sequence[int],
) -> str | None:
    with torch.inference_mode():
        for items in check_items:
            dense, sparse = _query(model, items, device, generator)
            expected = model(dense, sparse)
            got = scorer(dense, sparse)
            if got.shape != expected.shape:
                shapes = f"{tuple(got.shape)}, eager {tuple(expected.shape)}"
                return f"trace gives shape {shapes} at {items} items"
            if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
                error = float((got - expected).abs().max())
                return f"trace differs from eager by up to {error:.2e} at {items} items"
    return None


def _query(
    model: RecommendationModel, items: int, device: torch.device, generator: torch.Generator
) -> tuple[Tensor | None, Tensor]:
    dense, sparse = random_query(model.spec, items, generator)
    return (None if dense is None else dense.to(device)), sparse.to(device)
