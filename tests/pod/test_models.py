"""Behaviour of the model zoo: shapes, determinism, query splitting, specs, scale, names.

Models are built at scale 0.01 once per (name, seed) and shared by the tests of this module.
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import Tensor

from recsched_pod.models import (
    MIN_TABLE_ROWS,
    MODEL_NAMES,
    ModelInputSpec,
    RecommendationModel,
    UnknownModelError,
    build_model,
    model_spec,
    random_query,
)
from recsched_pod.models.configs import PAPER_CONFIGS

SCALE = 0.01
pytestmark = pytest.mark.timeout(60)


@functools.cache
def cached_model(name: str, seed: int = 0) -> RecommendationModel:
    return build_model(name, scale=SCALE, seed=seed)


def query(spec: ModelInputSpec, items: int, seed: int = 1) -> tuple[Tensor | None, Tensor]:
    return random_query(spec, items, torch.Generator().manual_seed(seed))


def score(model: RecommendationModel, dense: Tensor | None, sparse: Tensor) -> Tensor:
    with torch.inference_mode():
        return model(dense, sparse)


def test_model_names_are_the_eight_deeprecinfra_models_in_paper_order() -> None:
    assert MODEL_NAMES == ("rmc1", "rmc2", "rmc3", "ncf", "wnd", "mtwnd", "din", "dien")
    assert set(PAPER_CONFIGS) == set(MODEL_NAMES)


@pytest.mark.parametrize("items", [1, 7, 1024])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_scores_are_fp32_with_one_row_per_item_and_spec_width(name: str, items: int) -> None:
    model = cached_model(name)
    scores = score(model, *query(model.spec, items))
    assert scores.dtype == torch.float32
    assert scores.shape == (items, model.spec.output_width)
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_and_same_input_give_identical_scores(name: str) -> None:
    dense, sparse = query(cached_model(name).spec, 64)
    rebuilt = build_model(name, scale=SCALE, seed=0)
    assert torch.equal(score(cached_model(name), dense, sparse), score(rebuilt, dense, sparse))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_different_seed_gives_different_scores(name: str) -> None:
    dense, sparse = query(cached_model(name).spec, 64)
    seed_0 = score(cached_model(name, seed=0), dense, sparse)
    seed_1 = score(cached_model(name, seed=1), dense, sparse)
    assert not torch.allclose(seed_0, seed_1)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_different_items_of_a_query_get_different_scores(name: str) -> None:
    scores = score(cached_model(name), *query(cached_model(name).spec, 64))
    assert (scores.std(dim=0) > 0).any()


@pytest.mark.parametrize(("items", "batch_items"), [(150, 32), (10, 1), (5, 8)])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_query_split_into_requests_scores_like_the_whole_query(
    name: str, items: int, batch_items: int
) -> None:
    model = cached_model(name)
    dense, sparse = query(model.spec, items)
    whole = score(model, dense, sparse)
    requests = [
        score(
            model,
            None if dense is None else dense[start : start + batch_items],
            sparse[start : start + batch_items],
        )
        for start in range(0, items, batch_items)
    ]
    assert len(requests) == math.ceil(items / batch_items)
    assert torch.allclose(torch.cat(requests), whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_threads_sharing_one_model_get_the_scores_of_serial_calls(name: str) -> None:
    model = cached_model(name)
    queries = [query(model.spec, 16, seed=seed) for seed in range(8)]
    serial = [score(model, dense, sparse) for dense, sparse in queries]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda q: score(model, *q), queries))
    for expected, got in zip(serial, threaded, strict=True):
        assert torch.equal(expected, got)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_built_model_spec_equals_the_cheap_model_spec(name: str) -> None:
    assert cached_model(name).spec == model_spec(name, scale=SCALE)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_embedding_tables_have_the_spec_rows_in_spec_order(name: str) -> None:
    model = cached_model(name)
    assert model.embeddings.table_rows == model.spec.table_rows
    assert model.embeddings.bag.weight.shape[0] == model.spec.embedding_rows


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_accepts_first_and_last_row_of_every_table(name: str) -> None:
    model = cached_model(name)
    spec = model.spec
    dense, _ = query(spec, 2)
    last_rows = torch.tensor(spec.table_rows).view(1, -1, 1) - 1
    sparse = torch.cat((torch.zeros_like(last_rows), last_rows)).expand(spec.sparse_shape(2))
    scores = score(model, dense, sparse.contiguous())
    assert scores.shape == spec.output_shape(2)
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if model_spec(n).has_dense])
def test_dense_model_rejects_dense_features_of_another_width(name: str) -> None:
    model = cached_model(name)
    _, sparse = query(model.spec, 3)
    with pytest.raises(RuntimeError):
        score(model, torch.rand(3, model.spec.dense_features + 1), sparse)
    with pytest.raises(ValueError, match="dense_features"):
        score(model, None, sparse)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_random_query_has_spec_shapes_and_in_range_distinct_indices(name: str) -> None:
    spec = model_spec(name, scale=SCALE)
    dense, sparse = query(spec, 50)
    if spec.has_dense:
        assert dense is not None
        assert dense.dtype == torch.float32
        assert dense.shape == spec.dense_shape(50)
    else:
        assert dense is None
    assert sparse.dtype == torch.int64
    assert sparse.shape == spec.sparse_shape(50)
    rows = torch.tensor(spec.table_rows).view(1, -1, 1)
    assert (sparse >= 0).all()
    assert (sparse < rows).all()
    ordered = sparse.sort(dim=2).values
    assert (ordered[:, :, 1:] != ordered[:, :, :-1]).all()


def test_random_query_is_fixed_by_the_generator_seed() -> None:
    spec = model_spec("rmc1")
    dense_a, sparse_a = query(spec, 10, seed=5)
    dense_b, sparse_b = query(spec, 10, seed=5)
    _, sparse_c = query(spec, 10, seed=6)
    assert dense_a is not None and dense_b is not None
    assert torch.equal(dense_a, dense_b)
    assert torch.equal(sparse_a, sparse_b)
    assert not torch.equal(sparse_a, sparse_c)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_scale_multiplies_paper_rows_with_a_floor_of_1000(name: str) -> None:
    paper_rows = PAPER_CONFIGS[name].paper_table_rows()
    assert model_spec(name, scale=1.0).table_rows == paper_rows
    assert model_spec(name, scale=SCALE).table_rows == tuple(
        max(MIN_TABLE_ROWS, round(rows * SCALE)) for rows in paper_rows
    )
    assert set(model_spec(name, scale=1e-6).table_rows) == {MIN_TABLE_ROWS}


def test_scale_changes_the_rows_of_the_built_tables() -> None:
    small = build_model("rmc1", scale=0.001)
    assert small.spec.table_rows == (4_000,) * 8
    assert small.embeddings.bag.weight.shape == (8 * 4_000, 32)
    assert cached_model("rmc1").embeddings.bag.weight.shape == (8 * 40_000, 32)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_scale_that_is_not_a_positive_finite_number_is_rejected(scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        model_spec("wnd", scale=scale)


@pytest.mark.parametrize("build", [model_spec, build_model])
def test_unknown_model_name_raises_and_lists_valid_names(build: object) -> None:
    assert callable(build)
    with pytest.raises(UnknownModelError) as raised:
        build("rmc4")
    assert isinstance(raised.value, ValueError)
    assert "rmc4" in str(raised.value)
    for name in MODEL_NAMES:
        assert name in str(raised.value)


def test_building_a_model_leaves_the_global_torch_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model("ncf", scale=SCALE)
    assert torch.equal(torch.rand(3), expected)


def test_built_model_is_in_eval_mode_with_frozen_parameters() -> None:
    model = cached_model("wnd")
    assert not model.training
    assert not any(parameter.requires_grad for parameter in model.parameters())
