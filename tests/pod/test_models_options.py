"""Architecture options: the papers' intent by default, the released code's variant on request."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from recsched_pod.models import (
    InvalidModelOptionError,
    RecommendationModel,
    build_model,
    model_options,
    model_spec,
    random_query,
)
from recsched_pod.models.dien import DeepInterestEvolutionNetwork
from recsched_pod.models.din import DeepInterestNetwork

SCALE = 0.01
pytestmark = pytest.mark.timeout(60)


def scores_of(model: RecommendationModel, items: int = 32) -> Tensor:
    dense, sparse = random_query(model.spec, items, torch.Generator().manual_seed(3))
    with torch.inference_mode():
        return model(dense, sparse)


def test_din_builds_the_intended_250_behaviour_tables_with_one_attention_unit_each() -> None:
    model = build_model("din", scale=SCALE)
    assert isinstance(model, DeepInterestNetwork)
    assert model.spec.num_tables == 1 + 250 + 2
    assert model.attention.hidden_layer.weight.shape == (250, 96, 1)
    assert model.attention.output_layer.weight.shape == (250, 1, 32)
    assert scores_of(model).shape == (32, 2)


def test_din_with_one_behaviour_table_runs_the_released_four_table_layout() -> None:
    spec = model_spec("din", scale=SCALE, behaviour_tables=1)
    assert spec.table_rows == (10_000, 1_000, 100_000, 100_000)
    model = build_model("din", scale=SCALE, behaviour_tables=1)
    assert model.spec == spec
    assert scores_of(model).shape == (32, 2)


def test_dien_uses_grus_by_default_and_the_released_plain_rnn_on_request() -> None:
    gru = build_model("dien", scale=SCALE)
    rnn = build_model("dien", scale=SCALE, recurrent="rnn")
    assert isinstance(gru, DeepInterestEvolutionNetwork)
    assert isinstance(rnn, DeepInterestEvolutionNetwork)
    assert isinstance(gru.interest.extractor, nn.GRU)
    assert isinstance(rnn.interest.extractor, nn.RNN)
    assert isinstance(rnn.interest.evolution, nn.RNN)
    assert gru.spec.table_rows == rnn.spec.table_rows
    gru_scores, rnn_scores = scores_of(gru), scores_of(rnn)
    assert gru_scores.shape == rnn_scores.shape == (32, 2)
    assert not torch.allclose(gru_scores, rnn_scores)


@pytest.mark.parametrize("name", ["din", "dien"])
def test_din_and_dien_score_a_click_softmax_by_default_and_released_relu_on_request(
    name: str,
) -> None:
    softmax_scores = scores_of(build_model(name, scale=SCALE))
    assert torch.allclose(softmax_scores.sum(dim=1), torch.ones(32))
    relu_scores = scores_of(build_model(name, scale=SCALE, last_activation="relu"))
    assert (relu_scores >= 0).all()
    assert not torch.allclose(softmax_scores, relu_scores)


@pytest.mark.parametrize(("tasks", "width"), [(None, 3), (1, 1), (5, 5)])
def test_mtwnd_scores_one_column_per_task(tasks: int | None, width: int) -> None:
    options = {} if tasks is None else {"tasks": tasks}
    assert model_spec("mtwnd", scale=SCALE, **options).output_width == width
    scores = scores_of(build_model("mtwnd", scale=SCALE, **options))
    assert scores.shape == (32, width)
    assert ((scores > 0) & (scores < 1)).all()


def test_mtwnd_task_heads_have_their_own_weights() -> None:
    scores = scores_of(build_model("mtwnd", scale=SCALE, tasks=2))
    assert not torch.allclose(scores[:, 0], scores[:, 1])


def test_ncf_gmf_product_changes_scores_but_not_shapes() -> None:
    released = build_model("ncf", scale=SCALE)
    product = build_model("ncf", scale=SCALE, gmf_combine="product")
    assert released.spec.output_width == product.spec.output_width == 64
    assert not torch.allclose(scores_of(released), scores_of(product))


def test_spec_records_every_option_with_its_default() -> None:
    assert model_spec("rmc1").options == ()
    assert model_spec("mtwnd").options_dict == {"tasks": 3}
    assert model_spec("din").options_dict == {"behaviour_tables": 250, "last_activation": "softmax"}
    assert model_spec("dien", recurrent="rnn").options_dict == {
        "last_activation": "softmax",
        "recurrent": "rnn",
    }
    assert model_options("ncf") == {"gmf_combine": "sum"}


def test_integer_options_given_as_strings_are_converted() -> None:
    assert model_spec("mtwnd", tasks="4").output_width == 4


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("rmc1", {"tasks": 2}, "no option tasks"),
        ("din", {"behaviour_table": 2}, "behaviour_tables"),
        ("mtwnd", {"tasks": 0}, "tasks must be an integer >= 1"),
        ("mtwnd", {"tasks": "three"}, "tasks must be an integer >= 1"),
        ("mtwnd", {"tasks": True}, "tasks must be an integer >= 1"),
        ("dien", {"recurrent": "lstm"}, "recurrent must be one of gru, rnn"),
        ("din", {"last_activation": "sigmoid"}, "last_activation must be one of"),
        ("ncf", {"gmf_combine": "concat"}, "gmf_combine"),
    ],
)
def test_unknown_option_or_bad_value_raises_naming_the_option(
    name: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidModelOptionError, match=message) as raised:
        model_spec(name, **options)
    assert isinstance(raised.value, ValueError)
