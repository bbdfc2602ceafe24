"""OIP v2 bodies (binary extension and JSON), metadata parsing, index generation (pure)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsched_loadtest.encoding import check_infer_response, prepare_queries
from recsched_loadtest.errors import EndpointError
from recsched_loadtest.indices import IndexDistribution, draw_sparse_indices, parse_index_spec
from recsched_loadtest.signature import ModelSignature, parse_model_metadata

METADATA = {
    "name": "toy",
    "versions": ["1"],
    "platform": "pytorch_torchscript",
    "inputs": [
        {"name": "dense_features", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "sparse_indices", "datatype": "INT64", "shape": [-1, 3, 2]},
    ],
    "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 1]}],
    "parameters": {"table_rows": "100,50,10", "max_query_items": 512, "device": "cpu"},
}
SIGNATURE = parse_model_metadata(METADATA)


def _decode_binary(body: bytes, header_length: int) -> tuple[dict, dict[str, np.ndarray]]:
    header = json.loads(body[:header_length])
    offset, tensors = header_length, {}
    for entry in header["inputs"]:
        size = entry["parameters"]["binary_data_size"]
        dtype = "<f4" if entry["datatype"] == "FP32" else "<i8"
        tensors[entry["name"]] = np.frombuffer(body[offset : offset + size], dtype).reshape(
            entry["shape"]
        )
        offset += size
    assert offset == len(body)
    return header, tensors


def test_metadata_gives_dense_width_tables_lookups_and_rows() -> None:
    assert ModelSignature("toy", 4, (100, 50, 10), 2, 1, 512) == SIGNATURE
    assert SIGNATURE.bytes_per_item == 4 * 4 + 8 * 3 * 2


def test_metadata_without_dense_input_means_sparse_only() -> None:
    document = {**METADATA, "inputs": METADATA["inputs"][1:]}
    assert parse_model_metadata(document).dense_features == 0


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "table_rows"),
        ({"table_rows": "100,50"}, "table_rows"),
        ({"table_rows": "a"}, "table_rows"),
    ],
)
def test_metadata_errors_name_the_broken_field(parameters: dict, message: str) -> None:
    with pytest.raises(EndpointError, match=message):
        parse_model_metadata({**METADATA, "parameters": parameters})


def test_binary_bodies_carry_each_query_size_and_valid_tensors() -> None:
    sizes = np.array([1, 7, 300], dtype=np.int64)
    queries = prepare_queries(np.random.default_rng(1), SIGNATURE, sizes, IndexDistribution())
    assert queries.content_type == "application/octet-stream"
    for query, size in enumerate(sizes):
        header, tensors = _decode_binary(queries.body(query), queries.header_lengths[query])
        assert header["outputs"] == [{"name": "scores", "parameters": {"binary_data": True}}]
        assert tensors["dense_features"].shape == (size, 4)
        assert tensors["sparse_indices"].shape == (size, 3, 2)
        rows = np.array([100, 50, 10]).reshape(1, 3, 1)
        assert tensors["sparse_indices"].min() >= 0 and np.all(tensors["sparse_indices"] < rows)


def test_bodies_joined_at_send_time_equal_prebuilt_ones() -> None:
    sizes = np.random.default_rng(2).integers(1, 1025, 50)
    prebuilt = prepare_queries(np.random.default_rng(3), SIGNATURE, sizes, IndexDistribution())
    lazy = prepare_queries(
        np.random.default_rng(3), SIGNATURE, sizes, IndexDistribution(), prebuild_budget_bytes=0
    )
    assert prebuilt.prebuilt is not None and lazy.prebuilt is None
    assert all(prebuilt.body(i) == lazy.body(i) for i in range(len(sizes)))


@pytest.mark.parametrize("dense_inputs", [True, False], ids=["dense_and_sparse", "sparse_only"])
def test_json_bodies_joined_from_the_pool_equal_prebuilt_ones(dense_inputs: bool) -> None:
    metadata = METADATA if dense_inputs else {**METADATA, "inputs": METADATA["inputs"][1:]}
    signature = parse_model_metadata(metadata)
    sizes = np.concatenate(([1, 1024], np.random.default_rng(2).integers(1, 1025, 40)))
    prebuilt = prepare_queries(
        np.random.default_rng(3), signature, sizes, IndexDistribution(), protocol="json"
    )
    pooled = prepare_queries(
        np.random.default_rng(3),
        signature,
        sizes,
        IndexDistribution(),
        protocol="json",
        prebuild_budget_bytes=0,
    )
    assert prebuilt.prebuilt is not None and pooled.prebuilt is None
    assert all(prebuilt.body(i) == pooled.body(i) for i in range(len(sizes)))


def test_json_runs_of_any_length_draw_from_a_bounded_pool() -> None:
    # 20,000 queries of 1,024 items would be ~3 GB of prebuilt JSON; the pool holds 8,192 rows.
    sizes = np.full(20_000, 1024, dtype=np.int64)
    queries = prepare_queries(
        np.random.default_rng(6), SIGNATURE, sizes, IndexDistribution(), protocol="json"
    )
    assert queries.prebuilt is None and queries.json_sparse is not None
    assert len(queries.json_sparse.text) < 64 << 20
    last = json.loads(queries.body(len(sizes) - 1))
    assert [entry["shape"][0] for entry in last["inputs"]] == [1024, 1024]
    assert len(last["inputs"][1]["data"]) == 1024 * 3 * 2


def test_queries_get_different_rows_not_the_same_first_rows() -> None:
    sizes = np.full(20, 16, dtype=np.int64)
    queries = prepare_queries(np.random.default_rng(4), SIGNATURE, sizes, IndexDistribution())
    bodies = {queries.body(i) for i in range(20)}
    assert len(bodies) == 20


def test_json_bodies_round_trip() -> None:
    signature = parse_model_metadata({**METADATA, "inputs": METADATA["inputs"][1:]})
    sizes = np.array([3], dtype=np.int64)
    queries = prepare_queries(
        np.random.default_rng(5), signature, sizes, IndexDistribution(), protocol="json"
    )
    document = json.loads(queries.body(0))
    assert queries.content_type == "application/json"
    (sparse,) = document["inputs"]
    assert sparse["name"] == "sparse_indices" and sparse["shape"] == [3, 3, 2]
    assert len(sparse["data"]) == 18 and all(isinstance(value, int) for value in sparse["data"])


def test_zipf_indices_stay_in_range_and_concentrate_on_few_rows() -> None:
    rows = (100_000, 1000)
    rng = np.random.default_rng(6)
    uniform = draw_sparse_indices(rng, IndexDistribution(), rows, 20_000, 10)
    skewed = draw_sparse_indices(rng, parse_index_spec("zipf:1.05"), rows, 20_000, 10)
    for indices in (uniform, skewed):
        assert indices.min() >= 0
        assert indices[:, 0].max() < rows[0] and indices[:, 1].max() < rows[1]
    _, counts = np.unique(skewed[:, 0], return_counts=True)
    top_share = np.sort(counts)[::-1][:1000].sum() / counts.sum()  # hottest 1% of rows
    _, uniform_counts = np.unique(uniform[:, 0], return_counts=True)
    uniform_share = np.sort(uniform_counts)[::-1][:1000].sum() / uniform_counts.sum()
    assert top_share > 0.5 > 0.05 > uniform_share
    ranked = np.sort(counts)[::-1]
    assert ranked[0] / ranked[1] == pytest.approx(2**1.05, rel=0.15)  # P(r) ~ (r + 1)^-s


_BINARY_HEADER = b'{"outputs":[{"name":"scores","shape":[5,1],"datatype":"FP32"}]}'


@pytest.mark.parametrize(
    ("status", "header_length", "body", "expected"),
    [
        (200, str(len(_BINARY_HEADER)), _BINARY_HEADER + b"\0" * 20, None),
        (200, None, b'{"outputs":[{"name":"scores","shape":[5,1],"data":[0,0,0,0,0]}]}', None),
        (
            200,
            None,
            b'{"outputs":[{"name":"scores","shape":[4,1],"data":[0,0,0,0]}]}',
            "bad_response",
        ),
        (200, None, b"not json", "bad_response"),
        (503, None, b'{"error":"overloaded"}', "http_503"),
    ],
)
def test_responses_are_classified(
    status: int, header_length: str | None, body: bytes, expected: str | None
) -> None:
    assert check_infer_response(status, header_length, body, 5) == expected
