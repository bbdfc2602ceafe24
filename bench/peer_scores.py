"""Do RecSched and MLServer score the same queries the same? And does MLServer take binary?

`check_same_scores` sends the same seeded queries (several sizes, one of 1024 items) as OIP v2
JSON to both servers and exits the bench (status 1, with the worst difference) when any score
differs by more than the tolerance: a throughput comparison between servers that compute
different things would mean nothing. `binary_probe` sends one query in the binary tensor
extension (`Inference-Header-Content-Length`, as recsched-loadtest's binary protocol does) and
records how the server answers. `single_query_ms` times one query at a time per size: the
floor under any p95, since the production mix's 95th-percentile query has about 611 items.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx
import numpy as np

from recsched_loadtest.encoding import HEADER_LENGTH, encode_binary_request, encode_json_request
from recsched_loadtest.signature import parse_model_metadata

CHECK_ITEMS: tuple[int, ...] = (1, 3, 64, 300, 1024)
TIMED_ITEMS: tuple[int, ...] = (16, 128, 611, 1024)
"""611 items: the 95th percentile of the production size mix (lognormal 5.1, 0.8)."""


def _query(metadata: dict[str, Any], items: int, seed: int) -> tuple[Any, Any]:
    signature = parse_model_metadata(metadata)
    rng = np.random.default_rng(seed)
    dense = rng.random((items, signature.dense_features), dtype=np.float32)
    rows = np.array(signature.table_rows).reshape(1, -1, 1)
    shape = (items, signature.num_tables, signature.lookups_per_table)
    sparse = (rng.random(shape) * rows).astype(np.int64)
    return dense, sparse


def _json_body(metadata: dict[str, Any], items: int, seed: int) -> bytes:
    """The load test's JSON infer body, asking for JSON scores instead of binary ones."""
    dense, sparse = _query(metadata, items, seed)
    body = encode_json_request(parse_model_metadata(metadata), dense, sparse)
    return body.replace(b'"binary_data":true', b'"binary_data":false')


def _scores(url: str, model: str, body: bytes) -> np.ndarray[Any, Any]:
    reply = httpx.post(
        f"{url}/v2/models/{model}/infer",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    reply.raise_for_status()
    output = next(o for o in reply.json()["outputs"] if o["name"] == "scores")
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def check_same_scores(
    pod_url: str, peer_url: str, model: str, metadata: dict[str, Any], tolerance: float
) -> dict[str, Any]:
    """Per query size, the largest absolute score difference; SystemExit past `tolerance`."""
    worst: dict[str, float] = {}
    for seed, items in enumerate(CHECK_ITEMS):
        body = _json_body(metadata, items, seed)
        ours, theirs = _scores(pod_url, model, body), _scores(peer_url, model, body)
        if ours.shape != theirs.shape:
            raise SystemExit(
                f"scores differ in shape at {items} items: {ours.shape} {theirs.shape}"
            )
        worst[str(items)] = float(np.abs(ours - theirs).max())
        if worst[str(items)] > tolerance:
            raise SystemExit(
                f"RecSched and MLServer scores differ by {worst[str(items)]:.3g} "
                f"(> {tolerance:g}) at {items} items: not the same model"
            )
    return {"tolerance": tolerance, "max_abs_difference_by_items": worst}


def binary_probe(url: str, model: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """How the server answers one binary-extension query of 8 items."""
    dense, sparse = _query(metadata, 8, 0)
    body, header_length = encode_binary_request(parse_model_metadata(metadata), dense, sparse)
    reply = httpx.post(
        f"{url}/v2/models/{model}/infer",
        content=body,
        headers={"Content-Type": "application/octet-stream", HEADER_LENGTH: str(header_length)},
        timeout=60,
    )
    return {"status": reply.status_code, "body": reply.text[:300]}


def single_query_ms(
    url: str, model: str, metadata: dict[str, Any], repeats: int = 7
) -> dict[str, float]:
    """Median latency of one JSON query at a time, per size (the first of each size discarded)."""
    found = {}
    with httpx.Client(timeout=60) as client:
        for items in TIMED_ITEMS:
            body = _json_body(metadata, items, items)
            took_ms = []
            for _ in range(repeats):
                start = time.perf_counter()
                reply = client.post(
                    f"{url}/v2/models/{model}/infer",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                reply.raise_for_status()
                took_ms.append((time.perf_counter() - start) * 1000)
            found[str(items)] = statistics.median(took_ms[1:])
    return found
