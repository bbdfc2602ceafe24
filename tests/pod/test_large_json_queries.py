"""Large JSON queries, decoded by the pod on a thread (`server.INLINE_JSON_DECODE_BYTES`), score
exactly as the same query sent in binary, and a bad one is still refused naming the field."""

from __future__ import annotations

import httpx
import numpy as np
import orjson

from recsched_pod.dataplane.server import INLINE_JSON_DECODE_BYTES
from support.pod_fixtures import RunningPod, binary_body, json_body, rmc1_arrays


def test_a_json_query_above_the_inline_size_scores_as_its_binary_twin(pod: RunningPod) -> None:
    dense, sparse = rmc1_arrays(120, seed=5)
    body = orjson.dumps(json_body(dense, sparse))
    assert len(body) > INLINE_JSON_DECODE_BYTES
    as_json = httpx.post(
        pod.url + "/v2/models/rmc1/infer",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert as_json.status_code == 200, as_json.text
    binary, headers = binary_body(dense, sparse)
    as_binary = httpx.post(
        pod.url + "/v2/models/rmc1/infer", content=binary, headers=headers, timeout=30
    )
    length = int(as_binary.headers["inference-header-content-length"])
    binary_scores = np.frombuffer(as_binary.content[length:], dtype="<f4")
    json_scores = np.asarray(as_json.json()["outputs"][0]["data"], dtype=np.float32)
    np.testing.assert_array_equal(json_scores, binary_scores)


def test_a_bad_value_deep_in_a_large_json_query_is_refused_naming_it(pod: RunningPod) -> None:
    dense, sparse = rmc1_arrays(120, seed=6)
    sparse[119, 7, 79] = 10**12
    body = orjson.dumps(json_body(dense, sparse))
    assert len(body) > INLINE_JSON_DECODE_BYTES
    response = httpx.post(
        pod.url + "/v2/models/rmc1/infer",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    assert "sparse_indices[119, 7, 79] = 1000000000000 is out of range" in response.json()["error"]
