"""INT64 data parsed on the decode pool (`json_prefetch`, `json_tensors.int64_prefetch`) accept and
refuse exactly what the one-thread path does, with the same 400 messages, and a refused query
leaves no slice queued on the pool.

Every case runs with slices of a few bytes and the prefetch threshold at 0, so each number is its
own slice on the pool and an error sits in the last slice, after the first ones were parsed.
"""

from __future__ import annotations

import concurrent.futures
import re
import threading
from typing import Any

import numpy as np
import pytest

from recsched_pod.errors import InvalidInputError
from recsched_pod.http import json_numbers, json_prefetch, json_tensors
from recsched_pod.http.json_tensors import ArrayText
from recsched_pod.http.protocol import decode_body
from recsched_pod.models.spec import ModelInputSpec
from support.waiting import wait_until

SPEC = ModelInputSpec(
    name="tiny", dense_features=2, table_rows=(10, 10), lookups_per_table=2, output_width=1
)
DENSE = b"[0.5,-1.25,3,4e-3]"  # 2 items x 2 features
GOOD_SPARSE = b"[1,2,3,4,5,6,7,8]"
DEADLINE_S = 10.0


def body_with(sparse_text: bytes, dense_text: bytes = DENSE) -> bytes:
    return (
        b'{"inputs":[{"name":"dense_features","datatype":"FP32","shape":[2,2],"data":'
        + dense_text
        + b'},{"name":"sparse_indices","datatype":"INT64","shape":[2,2,2],"data":'
        + sparse_text
        + b"}]}"
    )


def outcome(body: bytes, prefetch: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    """The decode's result or 400 message, with INT64 data on the pool or on this thread."""
    with monkeypatch.context() as patch:
        patch.setattr(json_tensors, "SLICE_BYTES", 3)
        patch.setattr(json_tensors, "PREFETCH_MIN_BYTES", 0 if prefetch else 1 << 40)
        try:
            query = decode_body(body, None, SPEC, 16)
        except InvalidInputError as error:
            return "error", str(error)
    assert query.dense is not None
    return "ok", (query.dense.tolist(), query.sparse.tolist())


def wait_until_idle() -> None:
    wait_until(lambda: not json_prefetch.busy(), timeout_s=DEADLINE_S, interval_s=0.001)


def test_indices_parsed_on_the_pool_equal_those_parsed_on_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = body_with(GOOD_SPARSE)
    on_pool = outcome(body, True, monkeypatch)
    assert on_pool == outcome(body, False, monkeypatch)
    assert on_pool[1][1] == [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    wait_until_idle()


def test_a_long_client_body_decodes_bit_for_bit_on_the_pool() -> None:
    """Real slice sizes: 4,096 items' indices span several 256 KiB slices."""
    spec = ModelInputSpec(
        name="wide", dense_features=2, table_rows=(10**9,), lookups_per_table=64, output_width=1
    )
    rng = np.random.default_rng(7)
    sparse = rng.integers(0, 10**9, size=(4096, 1, 64))
    dense = rng.random((4096, 2), dtype=np.float32)
    body = (
        b'{"inputs":[{"name":"dense_features","datatype":"FP32","shape":[4096,2],"data":['
        + ",".join(map(str, dense.ravel().tolist())).encode()
        + b']},{"name":"sparse_indices","datatype":"INT64","shape":[4096,1,64],"data":['
        + ",".join(map(str, sparse.ravel().tolist())).encode()
        + b"]}]}"
    )
    assert len(body) > 4 * json_tensors.SLICE_BYTES
    decoded = decode_body(body, None, spec, 4096)
    assert decoded.sparse.tobytes() == sparse.tobytes()
    wait_until_idle()


@pytest.mark.parametrize(
    ("sparse_text", "message"),
    [
        (b"[1,2,3,4,5,6,7,1e1]", "must hold integers"),
        (b"[1,2,3,4,5,6,7,8.0]", "must hold integers"),
        (b"[1,2,3,4,5,6,7,NaN]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,08]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,+8]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,8,]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,--8]", "not valid JSON"),
        (b"[1,2,3,4,5,6,7,9223372036854775808]", "must hold integers, got float64"),
        (b"[1,2,3,4,5,6,7,9223372036854775807]", r"= 9223372036854775807 is out of range"),
        (b"[1,2,3,4,5,6,7,null]", "must hold integers"),
        (b"[1,2,3,4,5,6,7]", r"data has 7 elements; shape \[2, 2, 2\] needs 8"),
        (b"[1,2,3,4,5,6,7,8,9]", "data has 9 elements"),
        (b"[1,2,3,4,5,6,7,-1]", r"sparse_indices\[1, 1, 1\] = -1 is out of range"),
        (b"[1,2,3,4,5,6,7,10]", r"sparse_indices\[1, 1, 1\] = 10 is out of range"),
    ],
    ids=lambda value: value.decode() if isinstance(value, bytes) else None,
)
def test_an_error_in_the_last_slice_gives_the_same_400_on_the_pool(
    sparse_text: bytes, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = body_with(sparse_text)
    kind, detail = outcome(body, True, monkeypatch)
    assert kind == "error" and re.search(message, detail), detail
    assert outcome(body, False, monkeypatch) == (kind, detail)
    wait_until_idle()


def test_whitespace_in_a_later_slice_is_still_accepted_on_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = body_with(b"[1,2,3,4,5,6,7, 8 ]")
    assert outcome(body, True, monkeypatch) == outcome(body, False, monkeypatch)
    assert outcome(body, True, monkeypatch)[0] == "ok"


def test_a_query_refused_while_its_indices_parse_leaves_no_slice_queued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The FP32 input (parsed first) is refused while the pool's threads are held inside the
    INT64 parser: the 400 comes at once, the slices not started are cancelled, and once the held
    ones finish nothing is left in flight."""
    release = threading.Event()
    calls: list[bytes] = []
    started: list[ArrayText] = []

    def held_parser(piece: bytes) -> Any:
        calls.append(piece)
        release.wait(DEADLINE_S)
        return json_numbers.int64_numbers(piece)

    start, as_array = ArrayText.start_int64_values, ArrayText.as_array
    threads = json_prefetch.decode_threads()

    def recorded_start(self: ArrayText) -> bool:
        started.append(self)
        return start(self)

    def as_array_once_the_pool_is_held(self: ArrayText) -> Any:
        # The pool has started its slices (and holds them in the parser) before the FP32 parse.
        wait_until(lambda: len(calls) >= threads, timeout_s=DEADLINE_S, interval_s=0.001)
        return as_array(self)

    monkeypatch.setattr(json_tensors, "int64_numbers", held_parser)
    monkeypatch.setattr(ArrayText, "start_int64_values", recorded_start)
    monkeypatch.setattr(ArrayText, "as_array", as_array_once_the_pool_is_held)
    monkeypatch.setattr(json_tensors, "SLICE_BYTES", 1)
    monkeypatch.setattr(json_tensors, "PREFETCH_MIN_BYTES", 0)
    try:
        with pytest.raises(InvalidInputError, match="data has 3 elements"):
            decode_body(body_with(GOOD_SPARSE, dense_text=b"[1,2,3]"), None, SPEC, 16)
    finally:
        release.set()
    (sparse,) = started
    futures = sparse.prefetch.futures
    assert futures is not None and len(futures) == 8
    concurrent.futures.wait(futures, timeout=DEADLINE_S)
    assert all(future.done() for future in futures)
    cancelled = sum(future.cancelled() for future in futures)
    assert (cancelled, len(calls)) == (len(futures) - threads, threads)
    wait_until_idle()


def test_the_router_parsing_a_header_starts_no_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    """`parse_json_body` alone (what the router runs to read N) never parses tensor data."""
    monkeypatch.setattr(json_tensors, "PREFETCH_MIN_BYTES", 0)
    document = json_tensors.parse_json_body(body_with(GOOD_SPARSE))
    sparse = document["inputs"][1]["data"]
    assert isinstance(sparse, ArrayText) and not sparse.prefetch.started
