"""The traced serving graph scores like the model, and anything a trace cannot carry stays eager."""

from __future__ import annotations

import pytest
import torch

from recsched_pod.dataplane.serving_graph import serving_graph
from recsched_pod.models import MODEL_NAMES, RecommendationModel, build_model, random_query
from support.pod_fixtures import TEST_SCALE

CPU = torch.device("cpu")


def assert_trace_scores_like_eager(
    name: str, device: torch.device, seed: int, sizes: tuple[int, ...]
) -> None:
    model = build_model(name, scale=TEST_SCALE).to(device).eval()
    graph = serving_graph(model, device)
    assert graph.mode == "traced", graph.reason
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        for items in sizes:
            dense, sparse = random_query(model.spec, items, generator)
            dense = None if dense is None else dense.to(device)
            sparse = sparse.to(device)
            torch.testing.assert_close(graph.scorer(dense, sparse), model(dense, sparse))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_traced_graph_scores_every_zoo_model_like_the_eager_model(name: str) -> None:
    assert_trace_scores_like_eager(name, CPU, seed=42, sizes=(2, 130))


class WrapsRmc1(RecommendationModel):
    def __init__(self) -> None:
        inner = build_model("rmc1", scale=TEST_SCALE)
        super().__init__(inner.spec)
        self.inner = inner


class BranchOnData(WrapsRmc1):
    """Python control flow on tensor values: a trace records one branch only."""

    def forward(self, dense: torch.Tensor | None, sparse: torch.Tensor) -> torch.Tensor:
        scores = self.inner(dense, sparse)
        if int(sparse.shape[0]) % 2 == 0:  # shape as a Python int: baked into the trace
            return scores
        return scores + 1.0


def test_a_trace_that_does_not_reproduce_the_model_falls_back_to_eager() -> None:
    model = BranchOnData().eval()
    graph = serving_graph(model, CPU)
    assert graph.mode == "eager"
    assert "differs from eager" in graph.reason and "items" in graph.reason
    assert graph.scorer is model


class Untraceable(WrapsRmc1):
    """Returns a dict, which a trace refuses to record."""

    def forward(self, dense: torch.Tensor | None, sparse: torch.Tensor) -> torch.Tensor:
        return {"scores": self.inner(dense, sparse)}  # type: ignore[return-value]


def test_a_model_that_cannot_be_traced_serves_eager_with_the_reason() -> None:
    model = Untraceable().eval()
    graph = serving_graph(model, CPU)
    assert graph.mode == "eager" and graph.reason.startswith("tracing failed")


def test_graph_mode_eager_serves_the_module_itself() -> None:
    model = build_model("rmc1", scale=TEST_SCALE).eval()
    graph = serving_graph(model, CPU, mode="eager")
    assert graph.mode == "eager" and graph.scorer is model


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_traced_graph_on_cuda_scores_like_the_eager_model(name: str) -> None:
    assert_trace_scores_like_eager(name, torch.device("cuda"), seed=7, sizes=(5, 700))
