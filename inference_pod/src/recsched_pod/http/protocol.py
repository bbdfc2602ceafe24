"""Open Inference Protocol v2 request decoding and response encoding (pure: numpy only).

Handles both the JSON form and the binary tensor extension (`Inference-Header-Content-Length`):
a JSON header, then each binary input's raw little-endian bytes in input order. Every malformed
query raises `InvalidInputError` (400) or `PayloadTooLargeError` (413) with a message naming the
field, before any tensor data is decoded when the header alone shows the problem. JSON bodies are
read by `json_tensors`: inputs' number arrays are cut out of the body before orjson parses the
rest, and INT64 data is parsed from its text by numpy, so a large JSON query costs no Python object
per number (the same checks apply; see that module for why nothing is accepted that was refused).
`decode_body` is the whole path from the body's bytes to a `DecodedQuery`, for callers that run it
off the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from recsched_pod.errors import InvalidInputError, PayloadTooLargeError
from recsched_pod.http.json_tensors import ArrayText, int64_prefetch, parse_json_body
from recsched_pod.models.spec import DENSE_INPUT, SCORES_OUTPUT, SPARSE_INPUT, ModelInputSpec

HEADER_LENGTH = "inference-header-content-length"
BINARY_CONTENT_TYPE = "application/octet-stream"
DATATYPES: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype("<f4"),
    "INT64": np.dtype("<i8"),
}


@dataclass(frozen=True)
class DecodedQuery:
    """One validated query of `items` items, ready for the model."""

    request_id: str | None
    items: int
    dense: npt.NDArray[np.float32] | None
    sparse: npt.NDArray[np.int64]
    binary_output: bool


Body = bytes | bytearray | memoryview


def split_body(body: Body, header_length_text: str | None) -> tuple[dict[str, Any], memoryview]:
    """Separate the JSON header from the binary part (empty for plain JSON requests).

    The binary part is a view, not a copy: for a body read into a `bytearray` the tensors decoded
    from it are zero-copy views too.
    """
    view = memoryview(body)
    if header_length_text is None:
        whole = body if isinstance(body, bytes | bytearray) else bytes(body)
        return _parse_object(parse_json_body, whole), view[:0]
    try:
        header_length = int(header_length_text)
    except ValueError:
        raise InvalidInputError(
            f"Inference-Header-Content-Length must be an integer, got {header_length_text!r}"
        ) from None
    if header_length < 0 or header_length > len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length {header_length} does not fit a body of "
            f"{len(body)} bytes"
        )
    # A binary request's header holds no tensor data: plain orjson.
    return _parse_object(orjson.loads, view[:header_length]), view[header_length:]


def _parse_object(parse: Callable[[Any], Any], text: Body) -> dict[str, Any]:
    try:
        document = parse(text)
    except orjson.JSONDecodeError as error:
        raise InvalidInputError(f"request body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidInputError("request body must be a JSON object with an 'inputs' list")
    return document


def query_items_from_header(header: Mapping[str, Any]) -> int:
    """N, the number of items, from the first dimension of the inputs' shapes (no data decoded).

    The router uses this to route; all inputs must agree on N.
    """
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError("'inputs' must be a non-empty list")
    sizes = set()
    for position, tensor in enumerate(inputs):
        shape = _shape_of(tensor, position)
        if not shape:
            raise InvalidInputError(f"inputs[{position}].shape must have at least one dimension")
        sizes.add(shape[0])
    if len(sizes) != 1:
        raise InvalidInputError(f"inputs disagree on the number of items: {sorted(sizes)}")
    return sizes.pop()


@dataclass(frozen=True)
class _Layout:
    name: str
    tensor: Mapping[str, Any]
    shape: list[int]
    dtype: np.dtype[Any]
    binary_bytes: int | None  # None: the data is inline JSON


@dataclass(frozen=True)
class CheckedHeader:
    """A request header that passed every check that needs no tensor data."""

    items: int
    request_id: str | None
    binary_output: bool
    layouts: tuple[_Layout, ...]


def check_header(
    header: Mapping[str, Any], binary_bytes: int, spec: ModelInputSpec, max_items: int
) -> CheckedHeader:
    """Validate names, datatypes, shapes, item count and binary sizes without decoding data.

    The router runs this alone (it forwards the body unchanged); the pod runs it before decoding,
    so both refuse a bad header with the same message.
    """
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError("'inputs' must be a non-empty list")
    expected = _expected_inputs(spec)
    by_name: dict[str, tuple[int, Mapping[str, Any]]] = {}
    for position, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InvalidInputError(f"inputs[{position}] must be an object")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise InvalidInputError(f"inputs[{position}].name must be a string")
        if name not in expected:
            raise InvalidInputError(
                f"unknown input {name!r}; model {spec.name} takes {', '.join(expected)}"
            )
        if name in by_name:
            raise InvalidInputError(f"input {name!r} given twice")
        by_name[name] = (position, tensor)
    for name in expected:
        if name not in by_name:
            raise InvalidInputError(f"missing input {name!r}")

    items = query_items_from_header(header)
    if items == 0:
        raise InvalidInputError(
            "query has 0 items: the first dimension of every input must be >= 1"
        )
    if items > max_items:
        raise PayloadTooLargeError(f"query has {items} items; this pod accepts at most {max_items}")

    layouts: list[tuple[int, _Layout]] = []
    for name, (datatype, tail) in expected.items():
        position, tensor = by_name[name]
        shape = _shape_of(tensor, position)
        want = [items, *tail]
        if list(shape) != want:
            raise InvalidInputError(f"input {name!r} has shape {shape}; expected {want}")
        if tensor.get("datatype") != datatype:
            raise InvalidInputError(
                f"input {name!r} has datatype {tensor.get('datatype')!r}; expected {datatype!r}"
            )
        dtype = DATATYPES[datatype]
        layouts.append(
            (position, _Layout(name, tensor, want, dtype, _binary_size(name, tensor, want, dtype)))
        )
    ordered = tuple(layout for _, layout in sorted(layouts, key=lambda pair: pair[0]))
    declared = sum(layout.binary_bytes or 0 for layout in ordered)
    if declared != binary_bytes:
        raise InvalidInputError(
            f"binary part is {binary_bytes} bytes but the inputs declare {declared} "
            "(header length mismatch?)"
        )
    return CheckedHeader(
        items=items,
        request_id=_request_id(header),
        binary_output=_wants_binary_output(header),
        layouts=ordered,
    )


def decode_query(
    header: Mapping[str, Any], binary_part: Body, spec: ModelInputSpec, max_items: int
) -> DecodedQuery:
    """Validate a parsed request against the model's inputs and decode its tensors."""
    checked = check_header(header, len(binary_part), spec, max_items)
    arrays = _decode_data(checked.layouts, binary_part)
    sparse = arrays[SPARSE_INPUT].astype(np.int64, copy=False)
    _check_index_ranges(sparse, spec)
    dense = arrays.get(DENSE_INPUT)
    return DecodedQuery(
        request_id=checked.request_id,
        items=checked.items,
        dense=None if dense is None else dense.astype(np.float32, copy=False),
        sparse=sparse,
        binary_output=checked.binary_output,
    )


def decode_body(
    body: Body, header_length_text: str | None, spec: ModelInputSpec, max_items: int
) -> DecodedQuery:
    """`split_body` then `decode_query`: from the received bytes to validated tensors."""
    header, binary_part = split_body(body, header_length_text)
    return decode_query(header, binary_part, spec, max_items)


def encode_response(
    model_name: str, request_id: str | None, scores: npt.NDArray[np.float32], binary: bool
) -> tuple[bytes, dict[str, str], str]:
    """OIP v2 response body, extra headers and media type for the `scores` output."""
    output: dict[str, Any] = {
        "name": SCORES_OUTPUT,
        "datatype": "FP32",
        "shape": list(scores.shape),
    }
    header: dict[str, Any] = {"model_name": model_name, "model_version": "1"}
    if request_id is not None:
        header["id"] = request_id
    header["outputs"] = [output]
    if not binary:
        output["data"] = scores.reshape(-1).tolist()
        return orjson.dumps(header), {}, "application/json"
    raw = np.ascontiguousarray(scores, dtype="<f4").tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    json_part = orjson.dumps(header)
    return (
        json_part + raw,
        {"Inference-Header-Content-Length": str(len(json_part))},
        (BINARY_CONTENT_TYPE),
    )


def _expected_inputs(spec: ModelInputSpec) -> dict[str, tuple[str, list[int]]]:
    expected: dict[str, tuple[str, list[int]]] = {}
    if spec.has_dense:
        expected[DENSE_INPUT] = ("FP32", [spec.dense_features])
    expected[SPARSE_INPUT] = ("INT64", [spec.num_tables, spec.lookups_per_table])
    return expected


def _shape_of(tensor: object, position: int) -> list[int]:
    if not isinstance(tensor, dict):
        raise InvalidInputError(f"inputs[{position}] must be an object")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0 for dim in shape
    ):
        raise InvalidInputError(
            f"inputs[{position}].shape must be a list of non-negative integers, got {shape!r}"
        )
    return shape


def _binary_size(
    name: str, tensor: Mapping[str, Any], shape: list[int], dtype: np.dtype[Any]
) -> int | None:
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInputError(f"input {name!r}: parameters must be an object")
    binary_size = parameters.get("binary_data_size")
    if binary_size is None:
        if "data" not in tensor:
            raise InvalidInputError(f"input {name!r} has neither 'data' nor binary_data_size")
        return None
    want = math.prod(shape) * dtype.itemsize
    if not isinstance(binary_size, int) or isinstance(binary_size, bool) or binary_size != want:
        raise InvalidInputError(
            f"input {name!r}: binary_data_size {binary_size!r} does not match shape "
            f"{shape} of {dtype.name} ({want} bytes)"
        )
    return want


def _decode_data(
    layouts: tuple[_Layout, ...], binary_part: Body
) -> dict[str, np.ndarray[Any, Any]]:
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    # Long INT64 texts start parsing on the decode pool while the other inputs parse here.
    prefetched = (layout.tensor.get("data") for layout in layouts if layout.dtype.kind == "i")
    with int64_prefetch(prefetched):
        for layout in layouts:
            count = math.prod(layout.shape)
            if layout.binary_bytes is not None:
                raw = np.frombuffer(binary_part, dtype=layout.dtype, count=count, offset=offset)
                # Writable when the body was read into a bytearray: no copy needed for torch.
                raw = raw if raw.flags.writeable else raw.copy()
                arrays[layout.name] = raw.reshape(layout.shape)
                offset += layout.binary_bytes
            else:
                arrays[layout.name] = _array_from_json(
                    layout.name, layout.tensor["data"], layout.dtype, layout.shape, count
                )
    return arrays


def _array_from_json(
    name: str, data: object, dtype: np.dtype[Any], shape: list[int], count: int
) -> np.ndarray[Any, Any]:
    if isinstance(data, ArrayText):
        values = data.int64_values() if dtype.kind == "i" else None
        if values is not None:
            if values.size != count:
                raise InvalidInputError(
                    f"input {name!r}: data has {values.size} elements; shape {shape} needs {count}"
                )
            return values.reshape(shape)
        try:
            array = data.as_array()  # floats, nested lists, odd text: the usual checks below
        except orjson.JSONDecodeError as error:
            raise InvalidInputError(f"request body is not valid JSON: {error}") from None
        except (ValueError, OverflowError):
            raise InvalidInputError(
                f"input {name!r}: data is not a regular numeric array"
            ) from None
    else:
        if not isinstance(data, list):
            raise InvalidInputError(f"input {name!r}: data must be a list")
        try:
            array = np.asarray(data)
        except (ValueError, OverflowError):
            raise InvalidInputError(
                f"input {name!r}: data is not a regular numeric array"
            ) from None
    allowed_kinds = "iu" if dtype.kind == "i" else "iuf"
    if array.size and array.dtype.kind not in allowed_kinds:
        kind = "integers" if dtype.kind == "i" else "numbers"
        raise InvalidInputError(f"input {name!r}: data must hold {kind}, got {array.dtype}")
    if array.size != count:
        raise InvalidInputError(
            f"input {name!r}: data has {array.size} elements; shape {shape} needs {count}"
        )
    if dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidInputError(f"input {name!r}: data holds NaN or infinity")
    try:
        with np.errstate(over="ignore"):
            cast = array.astype(dtype, casting="same_kind" if dtype.kind == "i" else "unsafe")
    except (TypeError, OverflowError):
        raise InvalidInputError(f"input {name!r}: values do not fit {dtype}") from None
    if dtype.kind == "f" and array.dtype != dtype and not np.isfinite(cast).all():
        # Finite as float64 but past float32's range (about 3.4e38): the cast made it infinity.
        raise InvalidInputError(f"input {name!r}: values do not fit {dtype}")
    return cast.reshape(shape)


def _check_index_ranges(sparse: npt.NDArray[np.int64], spec: ModelInputSpec) -> None:
    # One reduction pass over the query, no temporaries its size: read as unsigned, a negative
    # index is >= 2**63 and so above every table's rows. Locate the culprit only on failure.
    rows = np.asarray(spec.table_rows, dtype=np.int64)
    # Items first: an elementwise max over N contiguous rows, then over each table's lookups.
    if (sparse.view(np.uint64).max(axis=0).max(axis=1) < rows.astype(np.uint64)).all():
        return
    bad = (sparse < 0) | (sparse >= rows[None, :, None])
    item, table, lookup = (int(axis[0]) for axis in np.nonzero(bad))
    value = int(sparse[item, table, lookup])
    raise InvalidInputError(
        f"sparse_indices[{item}, {table}, {lookup}] = {value} is out of range for table "
        f"{table} with {spec.table_rows[table]} rows"
    )


def _request_id(header: Mapping[str, Any]) -> str | None:
    request_id = header.get("id")
    if request_id is None:
        return None
    if not isinstance(request_id, str):
        raise InvalidInputError("'id' must be a string")
    return request_id


def _wants_binary_output(header: Mapping[str, Any]) -> bool:
    parameters = header.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInputError("'parameters' must be an object")
    wants = parameters.get("binary_data_output", False)
    outputs = header.get("outputs")
    if outputs is None:
        return bool(wants)
    if not isinstance(outputs, list):
        raise InvalidInputError("'outputs' must be a list")
    for position, output in enumerate(outputs):
        if not isinstance(output, dict) or output.get("name") != SCORES_OUTPUT:
            raise InvalidInputError(f"outputs[{position}] must name the output {SCORES_OUTPUT!r}")
        output_parameters = output.get("parameters") or {}
        if not isinstance(output_parameters, dict):
            raise InvalidInputError(f"outputs[{position}].parameters must be an object")
        wants = output_parameters.get("binary_data", wants)
    return bool(wants)
