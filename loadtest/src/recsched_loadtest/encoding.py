"""OIP v2 infer bodies, binary tensor extension and JSON, built before a run (pure).

Random generation and serialisation happen in `prepare_queries`, before the first send. Tensor rows
come from one pool per run (`pool_items` items of dense features and sparse indices): query i takes
a contiguous window of its size at a random offset, which keeps inputs varied across queries
(DeepRecInfra reused the same first B rows for every request) at bounded memory. Bodies are joined
up front while their total stays under `prebuild_budget_bytes`; beyond that, sending query i only
joins its pre-encoded header with two slices of the pool (a memcpy, no encoding), so runs of huge
queries do not need gigabytes. JSON works the same way: the pool is encoded to JSON text once, each
item's span in that text is recorded, and a query's body is its JSON frame (which depends only on
its size) around two contiguous slices of the pool's text: byte for byte what `encode_json_request`
makes for the same rows, at any run length.

This is the client side of the contract; the load test does not import the pod's decoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from recsched_loadtest.errors import SpecError
from recsched_loadtest.indices import IndexDistribution, draw_sparse_indices
from recsched_loadtest.signature import DENSE_INPUT, SCORES_OUTPUT, SPARSE_INPUT, ModelSignature

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"
JSON_CONTENT_TYPE = "application/json"
_OUTPUTS = [{"name": SCORES_OUTPUT, "parameters": {"binary_data": True}}]


def _binary_header(signature: ModelSignature, items: int) -> bytes:
    inputs: list[dict[str, Any]] = []
    if signature.dense_features:
        dense_bytes = 4 * items * signature.dense_features
        inputs.append(
            {
                "name": DENSE_INPUT,
                "datatype": "FP32",
                "shape": [items, signature.dense_features],
                "parameters": {"binary_data_size": dense_bytes},
            }
        )
    sparse_shape = [items, signature.num_tables, signature.lookups_per_table]
    inputs.append(
        {
            "name": SPARSE_INPUT,
            "datatype": "INT64",
            "shape": sparse_shape,
            "parameters": {"binary_data_size": 8 * items * sparse_shape[1] * sparse_shape[2]},
        }
    )
    return orjson.dumps({"inputs": inputs, "outputs": _OUTPUTS})


def encode_binary_request(
    signature: ModelSignature, dense: npt.NDArray[np.float32] | None, sparse: npt.NDArray[np.int64]
) -> tuple[bytes, int]:
    """Return (body, JSON header length) for one query; tensors are sent little-endian."""
    header = _binary_header(signature, int(sparse.shape[0]))
    parts = [header]
    if signature.dense_features:
        if dense is None:
            raise SpecError(f"model {signature.name} needs dense features")
        parts.append(np.ascontiguousarray(dense, dtype="<f4").tobytes())
    parts.append(np.ascontiguousarray(sparse, dtype="<i8").tobytes())
    return b"".join(parts), len(header)


def _json_document(
    signature: ModelSignature, items: int, dense_data: object | None, sparse_data: object
) -> dict[str, Any]:
    inputs: list[dict[str, Any]] = []
    if signature.dense_features and dense_data is not None:
        inputs.append(
            {
                "name": DENSE_INPUT,
                "datatype": "FP32",
                "shape": [items, signature.dense_features],
                "data": dense_data,
            }
        )
    inputs.append(
        {
            "name": SPARSE_INPUT,
            "datatype": "INT64",
            "shape": [items, signature.num_tables, signature.lookups_per_table],
            "data": sparse_data,
        }
    )
    return {"inputs": inputs, "outputs": _OUTPUTS}


def encode_json_request(
    signature: ModelSignature, dense: npt.NDArray[np.float32] | None, sparse: npt.NDArray[np.int64]
) -> bytes:
    document = _json_document(
        signature,
        int(sparse.shape[0]),
        None if dense is None else dense.ravel(),
        sparse.ravel(),
    )
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


@dataclass(frozen=True)
class TensorPool:
    """Rows that query windows are cut from; `dense` is [P, D] float32 (D may be 0)."""

    dense: npt.NDArray[np.float32]
    sparse: npt.NDArray[np.int64]

    @property
    def items(self) -> int:
        return int(self.sparse.shape[0])


def make_tensor_pool(
    rng: np.random.Generator,
    signature: ModelSignature,
    indices: IndexDistribution,
    pool_items: int,
) -> TensorPool:
    dense = rng.random((pool_items, signature.dense_features), dtype=np.float32)
    sparse = draw_sparse_indices(
        rng, indices, signature.table_rows, pool_items, signature.lookups_per_table
    )
    return TensorPool(dense, sparse)


@dataclass(frozen=True)
class JsonTextPool:
    """The tensor pool as JSON number text: item i of a tensor is `text[starts[i]:ends[i]]`.

    Items are contiguous in the text and separated by commas, so items [o, o+n) are the single
    slice `text[starts[o]:ends[o+n-1]]`.
    """

    text: bytes
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def window(self, first_item: int, items: int) -> memoryview:
        return memoryview(self.text)[self.starts[first_item] : self.ends[first_item + items - 1]]


def json_text_pool(rows: npt.NDArray[Any]) -> JsonTextPool:
    """Encode a [P, ...] array once as flat JSON and locate each item's numbers in the text."""
    items = int(rows.shape[0])
    per_item = int(np.prod(rows.shape[1:], dtype=np.int64))
    text = orjson.dumps(rows.reshape(-1), option=orjson.OPT_SERIALIZE_NUMPY)
    if items == 0 or per_item == 0:
        return JsonTextPool(text, (), ())
    commas = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord(","))
    element_starts = np.concatenate(([1], commas + 1))  # after "[" or a comma
    element_ends = np.concatenate((commas, [len(text) - 1]))  # before a comma or "]"
    return JsonTextPool(
        text,
        tuple(element_starts[::per_item].tolist()),
        tuple(element_ends[per_item - 1 :: per_item].tolist()),
    )


_DATA_SLOT = b'"data":[]'


def json_frame(signature: ModelSignature, items: int) -> tuple[bytes, ...]:
    """The JSON body of a query of `items` items, cut where each input's numbers go.

    Joining `frame[0], dense numbers, frame[1], sparse numbers, frame[2]` (without the dense part
    for sparse-only models) gives exactly `encode_json_request`'s body for those rows.
    """
    dense_slot: list[float] | None = [] if signature.dense_features else None
    parts = orjson.dumps(_json_document(signature, items, dense_slot, [])).split(_DATA_SLOT)
    middle = tuple(b"]" + part + b'"data":[' for part in parts[1:-1])
    return (parts[0] + b'"data":[', *middle, b"]" + parts[-1])


@dataclass(frozen=True)
class PreparedQueries:
    """Everything a run sends, indexed by query number."""

    protocol: str  # "binary" or "json"
    sizes_items: npt.NDArray[np.int64]
    offsets_items: npt.NDArray[np.int64]
    header_lengths: tuple[int, ...]
    prebuilt: tuple[bytes, ...] | None
    headers: tuple[bytes, ...]
    dense_pool: bytes
    sparse_pool: bytes
    dense_bytes_per_item: int
    sparse_bytes_per_item: int
    json_dense: JsonTextPool | None = None  # JSON bodies joined at send time
    json_sparse: JsonTextPool | None = None
    json_frames: Mapping[int, tuple[bytes, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sizes_items)

    @property
    def content_type(self) -> str:
        return BINARY_CONTENT_TYPE if self.protocol == "binary" else JSON_CONTENT_TYPE

    def body(self, query: int) -> bytes:
        if self.prebuilt is not None:
            return self.prebuilt[query]
        start = int(self.offsets_items[query])
        end = start + int(self.sizes_items[query])
        if self.json_sparse is not None:
            return self._json_body(start, end - start)
        dense_view = memoryview(self.dense_pool)
        sparse_view = memoryview(self.sparse_pool)
        return b"".join(
            (
                self.headers[query],
                dense_view[start * self.dense_bytes_per_item : end * self.dense_bytes_per_item],
                sparse_view[start * self.sparse_bytes_per_item : end * self.sparse_bytes_per_item],
            )
        )

    def _json_body(self, start: int, items: int) -> bytes:
        assert self.json_sparse is not None
        frame = self.json_frames[items]
        sparse = self.json_sparse.window(start, items)
        if self.json_dense is None:
            return b"".join((frame[0], sparse, frame[1]))
        dense = self.json_dense.window(start, items)
        return b"".join((frame[0], dense, frame[1], sparse, frame[2]))


def prepare_queries(
    rng: np.random.Generator,
    signature: ModelSignature,
    sizes_items: npt.NDArray[np.int64],
    indices: IndexDistribution,
    protocol: str = "binary",
    pool_items: int = 8192,
    prebuild_budget_bytes: int = 256 << 20,
) -> PreparedQueries:
    """Generate the tensor pool and encode every query of the run."""
    if protocol not in ("binary", "json"):
        raise SpecError(f"protocol must be binary or json, got {protocol!r}")
    largest = int(sizes_items.max()) if len(sizes_items) else 1
    pool = make_tensor_pool(rng, signature, indices, max(pool_items, largest))
    offsets = rng.integers(0, pool.items - sizes_items + 1).astype(np.int64)
    total_bytes = int(sizes_items.sum()) * signature.bytes_per_item
    headers: list[bytes] = []
    prebuilt: list[bytes] | None = [] if total_bytes <= prebuild_budget_bytes else None
    if protocol == "json" and prebuilt is None:
        return _json_pooled_queries(signature, sizes_items, offsets, pool)
    for size, offset in zip(sizes_items.tolist(), offsets.tolist(), strict=True):
        dense = pool.dense[offset : offset + size] if signature.dense_features else None
        sparse = pool.sparse[offset : offset + size]
        if protocol == "json":
            assert prebuilt is not None
            prebuilt.append(encode_json_request(signature, dense, sparse))
            headers.append(b"")
        elif prebuilt is not None:
            body, header_length = encode_binary_request(signature, dense, sparse)
            prebuilt.append(body)
            headers.append(body[:header_length])
        else:
            headers.append(_binary_header(signature, size))
    return PreparedQueries(
        protocol=protocol,
        sizes_items=sizes_items,
        offsets_items=offsets,
        header_lengths=tuple(len(header) for header in headers),
        prebuilt=tuple(prebuilt) if prebuilt is not None else None,
        headers=tuple(headers),
        # Pools are only read when bodies are joined at send time.
        dense_pool=b"" if prebuilt is not None else pool.dense.astype("<f4").tobytes(),
        sparse_pool=b"" if prebuilt is not None else pool.sparse.astype("<i8").tobytes(),
        dense_bytes_per_item=4 * signature.dense_features,
        sparse_bytes_per_item=8 * signature.num_tables * signature.lookups_per_table,
    )


def _json_pooled_queries(
    signature: ModelSignature,
    sizes_items: npt.NDArray[np.int64],
    offsets: npt.NDArray[np.int64],
    pool: TensorPool,
) -> PreparedQueries:
    """JSON queries whose bodies are joined at send time from the pool's JSON text."""
    return PreparedQueries(
        protocol="json",
        sizes_items=sizes_items,
        offsets_items=offsets,
        header_lengths=(0,) * len(sizes_items),
        prebuilt=None,
        headers=(b"",) * len(sizes_items),
        dense_pool=b"",
        sparse_pool=b"",
        dense_bytes_per_item=4 * signature.dense_features,
        sparse_bytes_per_item=8 * signature.num_tables * signature.lookups_per_table,
        json_dense=json_text_pool(pool.dense) if signature.dense_features else None,
        json_sparse=json_text_pool(pool.sparse),
        json_frames={size: json_frame(signature, size) for size in set(sizes_items.tolist())},
    )


def check_infer_response(
    status_code: int, header_length: str | None, body: bytes, expected_items: int
) -> str | None:
    """None for a good answer, else the error kind (`http_<status>` or `bad_response`)."""
    if status_code != 200:
        return f"http_{status_code}"
    try:
        header_bytes = body[: int(header_length)] if header_length is not None else body
        document = orjson.loads(header_bytes)
        outputs = document["outputs"] if isinstance(document, Mapping) else None
        scores = next(o for o in outputs or [] if o.get("name") == SCORES_OUTPUT)
        if int(scores["shape"][0]) != expected_items:
            return "bad_response"
    except (ValueError, KeyError, TypeError, IndexError, StopIteration, orjson.JSONDecodeError):
        return "bad_response"
    return None
