"""OIP v2 decoding: valid JSON and binary queries decode to the same tensors; every malformed
query is refused with the right error class and a message naming the problem."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from recsched_pod.errors import InvalidInputError, PayloadTooLargeError
from recsched_pod.http.protocol import (
    decode_query,
    encode_response,
    query_items_from_header,
    split_body,
)
from recsched_pod.models.spec import ModelInputSpec
from support.pod_fixtures import binary_body as support_binary_body
from support.pod_fixtures import json_body

SPEC = ModelInputSpec(
    name="tiny", dense_features=3, table_rows=(10, 20), lookups_per_table=2, output_width=1
)
SPARSE_ONLY = ModelInputSpec(
    name="sparse", dense_features=0, table_rows=(5,), lookups_per_table=1, output_width=2
)


def make_arrays(items: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((items, 3)).astype(np.float32)
    sparse = np.stack(
        [rng.integers(0, rows, size=(items, 2)) for rows in SPEC.table_rows], axis=1
    ).astype(np.int64)
    return dense, sparse


def binary_body(dense: np.ndarray, sparse: np.ndarray) -> tuple[bytes, str]:
    body, headers = support_binary_body(dense, sparse)
    return body, headers["Inference-Header-Content-Length"]


def decode_json(payload: Any, spec: ModelInputSpec = SPEC, max_items: int = 16) -> Any:
    header, binary = split_body(orjson.dumps(payload), None)
    return decode_query(header, binary, spec, max_items)


def test_json_and_binary_queries_decode_to_the_same_tensors() -> None:
    dense, sparse = make_arrays(5)
    from_json = decode_json(json_body(dense, sparse))
    body, length = binary_body(dense, sparse)
    header, binary = split_body(body, length)
    from_binary = decode_query(header, binary, SPEC, 16)
    assert from_json.items == from_binary.items == 5
    np.testing.assert_array_equal(from_json.dense, dense)
    np.testing.assert_array_equal(from_binary.dense, dense)
    np.testing.assert_array_equal(from_json.sparse, sparse)
    np.testing.assert_array_equal(from_binary.sparse, sparse)
    assert not from_json.binary_output
    assert from_binary.binary_output


def test_nested_json_data_is_accepted_like_flat_data() -> None:
    dense, sparse = make_arrays(2)
    payload = json_body(dense, sparse)
    payload["inputs"][1]["data"] = sparse.tolist()
    np.testing.assert_array_equal(decode_json(payload).sparse, sparse)


def test_router_reads_query_items_from_shapes_without_data() -> None:
    header = {"inputs": [{"name": "sparse_indices", "shape": [37, 2, 2]}]}
    assert query_items_from_header(header) == 37


def test_inputs_disagreeing_on_items_are_rejected() -> None:
    dense, sparse = make_arrays(3)
    payload = json_body(dense, sparse)
    payload["inputs"][0]["shape"] = [4, 3]
    with pytest.raises(InvalidInputError, match="disagree"):
        decode_json(payload)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("inputs"), "'inputs' must be a non-empty list"),
        (lambda p: p["inputs"].pop(0), "missing input 'dense_features'"),
        (lambda p: p["inputs"][0].update(name="bogus"), "unknown input 'bogus'"),
        (lambda p: p["inputs"].append(dict(p["inputs"][0])), "given twice"),
        (lambda p: p["inputs"][0].update(datatype="FP64"), "datatype 'FP64'; expected 'FP32'"),
        (lambda p: p["inputs"][1].update(datatype="INT32"), "expected 'INT64'"),
        (
            lambda p: p["inputs"][1].update(shape=[3, 2, 3]),
            r"shape \[3, 2, 3\]; expected \[3, 2, 2\]",
        ),
        (lambda p: p["inputs"][0].update(shape=[3, "x"]), "non-negative integers"),
        (lambda p: p["inputs"][1]["data"].pop(), "has 11 elements"),
        (lambda p: p["inputs"][1].update(data="abc"), "data must be a list"),
        (lambda p: p["inputs"][1]["data"].__setitem__(0, 1.5), "must hold integers"),
        (lambda p: p["inputs"][0]["data"].__setitem__(0, "x"), "must hold numbers"),
        (lambda p: p["inputs"][0]["data"].__setitem__(0, 1e39), "values do not fit float32"),
        (lambda p: p["inputs"][0]["data"].__setitem__(0, -1e300), "values do not fit float32"),
        (
            lambda p: p["inputs"][1]["data"].__setitem__(0, 10),
            r"sparse_indices\[0, 0, 0\] = 10 is out of range for table 0 with 10 rows",
        ),
        (lambda p: p["inputs"][1]["data"].__setitem__(2, -1), "out of range for table 1"),
        (lambda p: p["inputs"][0].pop("data"), "neither 'data' nor binary_data_size"),
        (lambda p: p.update(outputs=[{"name": "logits"}]), "must name the output 'scores'"),
        (lambda p: p.update(id=5), "'id' must be a string"),
    ],
)
def test_malformed_json_query_is_rejected_naming_the_problem(mutate: Any, message: str) -> None:
    dense, sparse = make_arrays(3)
    payload = json_body(dense, sparse)
    mutate(payload)
    with pytest.raises(InvalidInputError, match=message):
        decode_json(payload)


def test_zero_items_is_a_bad_request() -> None:
    dense, sparse = make_arrays(0)
    with pytest.raises(InvalidInputError, match="0 items"):
        decode_json(json_body(dense, sparse))


def test_too_many_items_is_payload_too_large() -> None:
    dense, sparse = make_arrays(17)
    with pytest.raises(PayloadTooLargeError, match="17 items; this pod accepts at most 16"):
        decode_json(json_body(dense, sparse))


def test_model_without_dense_input_refuses_dense_features() -> None:
    payload = {
        "inputs": [
            {"name": "sparse_indices", "datatype": "INT64", "shape": [1, 1, 1], "data": [4]},
            {"name": "dense_features", "datatype": "FP32", "shape": [1, 1], "data": [0.0]},
        ]
    }
    with pytest.raises(InvalidInputError, match="unknown input 'dense_features'"):
        decode_json(payload, SPARSE_ONLY)


@pytest.mark.parametrize(
    ("body", "length", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (b"{}", "abc", "must be an integer"),
        (b"{}", "99", "does not fit a body of 2 bytes"),
        (b"{}", "-1", "does not fit"),
    ],
)
def test_unreadable_body_is_rejected(body: bytes, length: str | None, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        split_body(body, length)


def test_binary_part_shorter_than_declared_is_a_length_mismatch() -> None:
    dense, sparse = make_arrays(2)
    body, length = binary_body(dense, sparse)
    header, binary = split_body(body[:-8], length)
    with pytest.raises(InvalidInputError, match="header length mismatch"):
        decode_query(header, binary, SPEC, 16)


def test_binary_part_longer_than_declared_is_a_length_mismatch() -> None:
    dense, sparse = make_arrays(2)
    body, length = binary_body(dense, sparse)
    header, binary = split_body(body + b"\0" * 8, length)
    with pytest.raises(InvalidInputError, match="header length mismatch"):
        decode_query(header, binary, SPEC, 16)


def test_binary_size_not_matching_shape_is_rejected() -> None:
    dense, sparse = make_arrays(2)
    body, length = binary_body(dense, sparse)
    header, binary = split_body(body, length)
    header["inputs"][0]["parameters"]["binary_data_size"] = 4
    with pytest.raises(InvalidInputError, match="binary_data_size 4 does not match"):
        decode_query(header, binary, SPEC, 16)


def test_binary_response_carries_header_length_and_raw_scores() -> None:
    scores = np.arange(6, dtype=np.float32).reshape(3, 2)
    body, headers, media_type = encode_response("m", "q1", scores, binary=True)
    length = int(headers["Inference-Header-Content-Length"])
    header = orjson.loads(body[:length])
    assert media_type == "application/octet-stream"
    assert header["id"] == "q1"
    assert header["outputs"][0]["shape"] == [3, 2]
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 24
    np.testing.assert_array_equal(np.frombuffer(body[length:], dtype="<f4").reshape(3, 2), scores)


def test_json_response_holds_scores_in_row_major_order() -> None:
    scores = np.arange(6, dtype=np.float32).reshape(3, 2)
    body, headers, media_type = encode_response("m", None, scores, binary=False)
    payload = orjson.loads(body)
    assert headers == {} and media_type == "application/json"
    assert payload["outputs"][0]["data"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert "id" not in payload


@pytest.mark.parametrize(
    ("item", "table", "lookup", "value", "rows"),
    [(1, 0, 1, -1, 10), (3, 1, 0, 20, 20), (0, 1, 1, -(2**63), 20), (2, 0, 0, 2**62, 10)],
)
def test_index_outside_its_table_is_named_whether_negative_or_too_large(
    item: int, table: int, lookup: int, value: int, rows: int
) -> None:
    dense, sparse = make_arrays(4)
    sparse[item, table, lookup] = value
    body, length = binary_body(dense, sparse)
    header, binary = split_body(body, length)
    with pytest.raises(InvalidInputError) as error:
        decode_query(header, binary, SPEC, 16)
    assert str(error.value) == (
        f"sparse_indices[{item}, {table}, {lookup}] = {value} is out of range for table "
        f"{table} with {rows} rows"
    )


def test_indices_at_both_ends_of_every_table_are_accepted() -> None:
    dense, sparse = make_arrays(2)
    sparse[0, :, :] = 0
    sparse[1, 0, :], sparse[1, 1, :] = 9, 19
    body, length = binary_body(dense, sparse)
    header, binary = split_body(body, length)
    np.testing.assert_array_equal(decode_query(header, binary, SPEC, 16).sparse, sparse)
