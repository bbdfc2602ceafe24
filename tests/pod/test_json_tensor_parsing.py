"""JSON bodies parsed from their bytes (`json_tensors`) accept and refuse exactly what the list path
(`orjson.loads` of the whole body, then `np.asarray`) accepts and refuses, with the same messages.

The reference is `decode_query` on `orjson.loads(body)`: a header whose data are plain lists takes
the original path. Long texts are parsed in slices; each case runs with the real slice size and with
slices of a few bytes, so that cuts fall between every pair of numbers.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsched_pod.errors import InvalidInputError
from recsched_pod.http import json_tensors
from recsched_pod.http.json_tensors import ArrayText, parse_json_body
from recsched_pod.http.protocol import decode_body, decode_query
from recsched_pod.models import model_spec
from recsched_pod.models.spec import ModelInputSpec

SPEC = ModelInputSpec(
    name="tiny", dense_features=2, table_rows=(10, 2**62), lookups_per_table=2, output_width=1
)
DENSE = b"[0.5,-1.25,3,4e-3]"  # 2 items x 2 features
SPARSE_SHAPE = b"[2,2,2]"
INVALID_JSON = "request body is not valid JSON"


@pytest.fixture(autouse=True, params=["real_slices", "tiny_slices"])
def slice_bytes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.param == "tiny_slices":
        monkeypatch.setattr(json_tensors, "SLICE_BYTES", 3)


def body_with(sparse_text: bytes, dense_text: bytes = DENSE) -> bytes:
    return (
        b'{"inputs":[{"name":"dense_features","datatype":"FP32","shape":[2,2],"data":'
        + dense_text
        + b'},{"name":"sparse_indices","datatype":"INT64","shape":'
        + SPARSE_SHAPE
        + b',"data":'
        + sparse_text
        + b"}]}"
    )


def outcome(decode: Any, body: bytes) -> tuple[str, Any]:
    try:
        query = decode(body)
    except InvalidInputError as error:
        # Invalid JSON inside a cut array is parsed alone, so orjson's reason and position may
        # differ from those it gives for the whole body: the refusal and its prefix do not.
        message = str(error)
        return "error", INVALID_JSON if message.startswith(INVALID_JSON) else message
    return "ok", (query.dense.tolist(), query.sparse.tolist())


def reference(body: bytes) -> Any:
    try:
        header = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInputError(f"request body is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise InvalidInputError("request body must be a JSON object with an 'inputs' list")
    return decode_query(header, b"", SPEC, 16)


def fast(body: bytes) -> Any:
    return decode_body(body, None, SPEC, 16)


def test_inputs_data_arrays_are_cut_out_and_the_rest_parsed_by_orjson() -> None:
    document = parse_json_body(body_with(b"[1,2,3,4,5,6,7,8]"))
    dense, sparse = (tensor["data"] for tensor in document["inputs"])
    assert dense == ArrayText(DENSE) and sparse == ArrayText(b"[1,2,3,4,5,6,7,8]")
    assert document["inputs"][1]["shape"] == [2, 2, 2]
    values = sparse.int64_values()
    assert values is not None and values.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize(
    ("sparse_text", "expected"),
    [
        (b"[1,2,3,4,5,6,7,8]", [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]),
        (b"[ 1 , 2,\n3,\t4 ,5,6,7,\r\n8 ]", [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]),
        (b"[[[1,2],[3,4]],[[5,6],[7,8]]]", [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]),
        (b"[[1,2,3,4],[5,6,7,8]]", [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]),
        (b"[0,0,9,4611686018427387903,-0,0,0,0]", [[[0, 0], [9, 2**62 - 1]], [[0, 0], [0, 0]]]),
    ],
    ids=["flat", "whitespace", "nested", "partly_nested", "extremes_and_minus_zero"],
)
def test_valid_integer_data_decodes_to_the_same_tensor(
    sparse_text: bytes, expected: list[Any]
) -> None:
    body = body_with(sparse_text)
    assert outcome(fast, body) == outcome(reference, body)
    assert outcome(fast, body)[1][1] == expected


@pytest.mark.parametrize(
    ("dense_text", "expected"),
    [
        (b"[1e2,-2.5E+1,0.125e-1,7]", [[100.0, -25.0], [0.0125, 7.0]]),
        (b"[[1, 2],[3,-4]]", [[1.0, 2.0], [3.0, -4.0]]),
    ],
)
def test_float_data_with_exponents_and_negatives_decodes(
    dense_text: bytes, expected: list[Any]
) -> None:
    body = body_with(b"[1,2,3,4,5,6,7,8]", dense_text)
    assert outcome(fast, body) == outcome(reference, body)
    assert np.allclose(outcome(fast, body)[1][0], expected)


@pytest.mark.parametrize(
    ("sparse_text", "message"),
    [
        (b"[1,2,3,4,5,6,7]", r"data has 7 elements; shape \[2, 2, 2\] needs 8"),
        (b"[1,2,3,4,5,6,7,8,9]", "data has 9 elements"),
        (b"[]", "data has 0 elements"),
        (b"[1,2,3,4,5,6,7,1e1]", "must hold integers"),
        (b"[1,2,3,4,5,6,7,8.0]", "must hold integers"),
        (b"[1,2,3,4,5,6,7,NaN]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,Infinity]", "not valid JSON"),
        (b"[true,false,true,true,false,true,true,true]", "must hold integers"),
        (b'[1,2,3,4,5,6,7,"8"]', "must hold integers"),
        (b"[1,2,3,4,5,6,7,null]", "must hold integers"),
        (b"[1,2,3,4,5,6,7,08]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,+8]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,- 8]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,8,]", "not valid JSON"),
        (b"[1,2,3,4,5,6,,7,8]", "not valid JSON"),
        (b"[1,,2,,3,,4,,5,,6,,7,,8]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7 8]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,--8]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,0x8]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,9223372036854775808]", "must hold integers, got float64"),
        (b"[1,2,3,4,5,6,7,-9223372036854775809]", "not a regular numeric array|must hold"),
        (b"[1,2,3,4,5,6,7,-1]", r"sparse_indices\[1, 1, 1\] = -1 is out of range"),
        (b"[1,10,3,4,5,6,7,8]", r"sparse_indices\[0, 0, 1\] = 10 is out of range"),
        (b"[[1,2],[3,4,5],6,7,8]", "not a regular numeric array"),
        (b"[1,2,3,4,5,6,7,8", "not valid JSON"),
        (b"[1,2,3", "not valid JSON"),
    ],
    ids=lambda value: value.decode() if isinstance(value, bytes) else None,
)
def test_bad_integer_data_is_refused_as_before(sparse_text: bytes, message: str) -> None:
    body = body_with(sparse_text)
    kind, detail = outcome(fast, body)
    assert kind == "error" and re.search(message, detail), detail
    assert outcome(reference, body) == (kind, detail)


@pytest.mark.parametrize(
    ("dense_text", "message"),
    [
        (b"[1,2,3,NaN]", "not valid JSON"),
        (b"[1.5,2.5,,3.5]", "not valid JSON"),
        (b"[1.5,2.5,3.5,]", "not valid JSON"),
        (b"[1.5,2,3,4]", None),  # floats and integers: float64, as before
        (b"[1.5,2.5,3.5,null]", "must hold numbers"),
        (b"[1,2,3,1e999]", "not valid JSON|NaN or infinity"),
        (b"[1,2,3]", "data has 3 elements"),
        (b'[1,2,3,"x"]', "must hold numbers"),
        (b"[1,2,3,true]", None),  # as before: a boolean among numbers is a number to numpy
    ],
)
def test_float_data_is_checked_as_before(dense_text: bytes, message: str | None) -> None:
    body = body_with(b"[1,2,3,4,5,6,7,8]", dense_text)
    kind, detail = outcome(fast, body)
    assert outcome(reference, body) == (kind, detail)
    if message is not None:
        assert kind == "error" and re.search(message, detail), detail


@pytest.mark.parametrize(
    "body",
    [
        # A "data" key outside inputs, a duplicate key, an escaped quote, a string holding the
        # key: each is parsed whole by orjson, and answers as before.
        b'{"parameters":{"data":[1,2]},"inputs":' + body_with(b"[1,2,3,4,5,6,7,8]")[10:],
        body_with(b'[1,2,3,4,5,6,7,8],"data":[0,0,0,0,0,0,0,0]'),
        body_with(b"[1,2,3,4,5,6,7,8]").replace(b'"tiny', b'"x\\"data\\": [1]'),
        body_with(b"[1,2,3,4,5,6,7,8]")[:-2] + b',"id":"\\"data\\": [1,2]"}]}',
        b'{"inputs": "data": [1,2]}',
        b'{"inputs":[{"data":[1,2]}] "data":[3]}',
    ],
    ids=["outside_inputs", "duplicate_key", "escaped", "in_a_string", "invalid", "invalid_after"],
)
def test_odd_documents_answer_exactly_as_the_list_path(body: bytes) -> None:
    assert outcome(fast, body) == outcome(reference, body)


def test_a_body_holding_a_marker_like_string_cannot_borrow_an_array() -> None:
    document = parse_json_body(body_with(b"[1,2,3,4,5,6,7,8]"))
    marker = json.dumps("recsched-data-" + "0" * 16 + "-0").encode()
    body = body_with(b"[1,2,3,4,5,6,7,8]", dense_text=marker)
    assert outcome(fast, body) == outcome(reference, body)
    assert isinstance(document["inputs"][1]["data"], ArrayText)


separators = st.sampled_from([",", ", ", " ,", ",\n", "\t,\t"])
tokens = st.one_of(
    st.integers(-5, 2**63 + 5).map(str),
    st.sampled_from(["01", "-0", "+1", "1.0", "1e2", "- 1", "", "-", "true", "NaN", "0x1"]),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(tokens, min_size=0, max_size=10), separator=separators, nested=st.booleans())
def test_random_integer_texts_answer_exactly_as_the_list_path(
    values: list[str], separator: str, nested: bool
) -> None:
    text = separator.join(values)
    if nested and len(values) >= 2:
        text = "[" + text + "]," + values[0]
    body = body_with(("[" + text + "]").encode())
    assert outcome(fast, body) == outcome(reference, body)


@pytest.mark.parametrize("model", ["rmc1", "wnd"])
@pytest.mark.parametrize("items", [1, 33])
def test_bodies_as_clients_write_them_decode_bit_for_bit(model: str, items: int) -> None:
    """orjson's numpy output (float32 shortest form, exponents for small and large values), as the
    load test sends it: the vectorised parsers give the reference's exact tensors."""
    spec = model_spec(model, 0.01)
    rng = np.random.default_rng(items)
    magnitudes = 10.0 ** rng.integers(-9, 9, size=(items, 1))
    dense = (rng.standard_normal((items, spec.dense_features)) * magnitudes).astype(np.float32)
    shape = (items, spec.num_tables, spec.lookups_per_table)
    sparse = rng.integers(0, min(spec.table_rows), size=shape)
    document = {
        "inputs": [
            {
                "name": "dense_features",
                "datatype": "FP32",
                "shape": list(dense.shape),
                "data": dense,
            },
            {"name": "sparse_indices", "datatype": "INT64", "shape": list(shape), "data": sparse},
        ]
    }
    body = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    decoded = decode_body(body, None, spec, 1024)
    expected = decode_query(orjson.loads(body), b"", spec, 1024)
    assert decoded.dense is not None and expected.dense is not None
    assert decoded.dense.tobytes() == expected.dense.tobytes() == dense.tobytes()
    assert decoded.sparse.tobytes() == expected.sparse.tobytes() == sparse.tobytes()


float_tokens = st.one_of(
    st.floats(width=32, allow_nan=False, allow_infinity=False).map(
        lambda value: orjson.dumps(np.float32(value), option=orjson.OPT_SERIALIZE_NUMPY).decode()
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**64), 2**64).map(str),
    st.sampled_from(["-0", "-0.0", "1e5", "1E-5", "1.5e+3", "01.5", "1.", ".5", "1e", "NaN", "x"]),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(float_tokens, min_size=3, max_size=5), separator=separators)
def test_random_float_texts_answer_exactly_as_the_list_path(
    values: list[str], separator: str
) -> None:
    body = body_with(b"[1,2,3,4,5,6,7,8]", ("[" + separator.join(values) + "]").encode())
    kind, detail = outcome(fast, body)
    assert (kind, detail) == outcome(reference, body)
    if kind == "ok":  # and to the bit, the sign of zero included
        assert fast(body).dense.tobytes() == reference(body).dense.tobytes()
