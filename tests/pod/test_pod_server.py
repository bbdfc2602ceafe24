"""The pod over real HTTP: OIP v2 health, metadata and inference (JSON, binary, tritonclient),
errors that name the problem, and metrics."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import torch

from recsched_pod.models import build_model, model_spec
from support.asgi_server import serve_app
from support.pod_fixtures import (
    RunningPod,
    binary_body,
    json_body,
    pod_settings,
    rmc1_arrays,
)
from support.waiting import wait_until


def query_arrays(items: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return rmc1_arrays(items, seed)


def json_query(dense: np.ndarray, sparse: np.ndarray) -> dict[str, Any]:
    return json_body(dense, sparse, id="q-7")


def binary_query(dense: np.ndarray, sparse: np.ndarray) -> tuple[bytes, dict[str, str]]:
    return binary_body(dense, sparse)


def expected_scores(dense: np.ndarray, sparse: np.ndarray) -> np.ndarray:
    model = build_model("rmc1", scale=0.001, seed=0).eval()
    with torch.inference_mode():
        return model(torch.from_numpy(dense), torch.from_numpy(sparse)).numpy()


def metric_value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not exported")


def test_liveness_and_readiness_answer_ok_once_warm(pod: RunningPod) -> None:
    assert httpx.get(pod.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(pod.url + "/v2/health/ready").status_code == 200
    assert httpx.get(pod.url + "/v2/models/rmc1/ready").json()["ready"] is True


def test_metadata_describes_inputs_outputs_and_table_rows(pod: RunningPod) -> None:
    meta = httpx.get(pod.url + "/v2/models/rmc1").json()
    spec = model_spec("rmc1", scale=0.001)
    shapes = {tensor["name"]: tensor["shape"] for tensor in meta["inputs"]}
    assert shapes == {
        "dense_features": [-1, spec.dense_features],
        "sparse_indices": [-1, spec.num_tables, spec.lookups_per_table],
    }
    assert meta["outputs"][0]["shape"] == [-1, spec.output_width]
    assert [int(r) for r in meta["parameters"]["table_rows"].split(",")] == list(spec.table_rows)


def test_json_query_scores_match_the_model_run_whole(pod: RunningPod) -> None:
    dense, sparse = query_arrays(37)
    response = httpx.post(pod.url + "/v2/models/rmc1/infer", json=json_query(dense, sparse))
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["id"] == "q-7"
    scores = np.asarray(payload["outputs"][0]["data"], dtype=np.float32).reshape(
        payload["outputs"][0]["shape"]
    )
    np.testing.assert_allclose(scores, expected_scores(dense, sparse), rtol=1e-5, atol=1e-6)


def test_binary_query_returns_binary_scores_equal_to_json(pod: RunningPod) -> None:
    dense, sparse = query_arrays(20, seed=3)
    body, headers = binary_query(dense, sparse)
    response = httpx.post(pod.url + "/v2/models/rmc1/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    header = orjson.loads(response.content[:length])
    binary_scores = np.frombuffer(response.content[length:], dtype="<f4").reshape(
        header["outputs"][0]["shape"]
    )
    json_scores = httpx.post(
        pod.url + "/v2/models/rmc1/infer", json=json_query(dense, sparse)
    ).json()["outputs"][0]["data"]
    np.testing.assert_array_equal(binary_scores.reshape(-1), np.asarray(json_scores, np.float32))


def test_same_size_binary_queries_on_kept_alive_connections_each_get_their_own_scores(
    pod: RunningPod,
) -> None:
    # Same size, so each connection's body buffer is reused from query to query (lean_http):
    # a buffer refilled while a query decoded from it is still scored would mix their scores.
    import concurrent.futures

    queries = [query_arrays(48, seed=seed) for seed in range(12)]

    def post_all(client_index: int) -> list[np.ndarray]:
        with httpx.Client() as client:
            scores = []
            for dense, sparse in queries[client_index::3]:
                body, headers = binary_query(dense, sparse)
                response = client.post(
                    pod.url + "/v2/models/rmc1/infer", content=body, headers=headers
                )
                assert response.status_code == 200, response.text
                length = int(response.headers["inference-header-content-length"])
                scores.append(np.frombuffer(response.content[length:], dtype="<f4").copy())
            return scores

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(post_all, range(3)))
    for client_index, scores in enumerate(results):
        for (dense, sparse), got in zip(queries[client_index::3], scores, strict=True):
            np.testing.assert_allclose(
                got, expected_scores(dense, sparse).reshape(-1), rtol=1e-5, atol=1e-6
            )


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_infers_against_the_pod(pod: RunningPod, binary: bool) -> None:
    import tritonclient.http as triton

    dense, sparse = query_arrays(9, seed=5)
    client = triton.InferenceServerClient(pod.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_model_ready("rmc1")
        inputs = [
            triton.InferInput("dense_features", list(dense.shape), "FP32"),
            triton.InferInput("sparse_indices", list(sparse.shape), "INT64"),
        ]
        inputs[0].set_data_from_numpy(dense, binary_data=binary)
        inputs[1].set_data_from_numpy(sparse, binary_data=binary)
        outputs = [triton.InferRequestedOutput("scores", binary_data=binary)]
        result = client.infer("rmc1", inputs, outputs=outputs)
        scores = result.as_numpy("scores")
    finally:
        client.close()
    np.testing.assert_allclose(scores, expected_scores(dense, sparse), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/nope/infer", b"{}", 404, "unknown model 'nope'"),
        ("/v2/models/rmc1/infer", b"{oops", 400, "not valid JSON"),
        ("/v2/models/rmc1/infer", b'{"inputs": []}', 400, "non-empty list"),
        (
            "/v2/models/rmc1/infer",
            orjson.dumps(
                {
                    "inputs": [
                        {
                            "name": "sparse_indices",
                            "datatype": "INT64",
                            "shape": [129, 8, 80],
                            "data": [],
                        },
                        {
                            "name": "dense_features",
                            "datatype": "FP32",
                            "shape": [129, 128],
                            "data": [],
                        },
                    ]
                }
            ),
            413,
            "129 items; this pod accepts at most 128",
        ),
    ],
)
def test_bad_queries_get_a_4xx_naming_the_problem(
    pod: RunningPod, path: str, body: bytes, status: int, message: str
) -> None:
    response = httpx.post(pod.url + path, content=body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_out_of_range_index_is_rejected_and_counted(pod: RunningPod) -> None:
    dense, sparse = query_arrays(4)
    sparse[2, 3, 1] = 10**6
    # The counter appears with its first rejection: run alone, this test may be the first.
    text = httpx.get(pod.url + "/metrics").text
    before = (
        metric_value(text, "recsched_rejected_queries_total", reason="invalid")
        if 'reason="invalid"' in text
        else 0.0
    )
    response = httpx.post(pod.url + "/v2/models/rmc1/infer", json=json_query(dense, sparse))
    assert response.status_code == 400
    assert (
        "sparse_indices[2, 3, 1] = 1000000 is out of range for table 3" in response.json()["error"]
    )
    after = metric_value(
        httpx.get(pod.url + "/metrics").text, "recsched_rejected_queries_total", reason="invalid"
    )
    assert after == before + 1


def test_declared_body_above_the_limit_is_refused_before_reading(pod: RunningPod) -> None:
    # A raw socket: HTTP clients refuse to send a body shorter than its Content-Length.
    import socket

    host, port = pod.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(
            b"POST /v2/models/rmc1/infer HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: 10000000000\r\n\r\n" + b"x" * 16
        )
        status_line = connection.recv(4096).split(b"\r\n", 1)[0]
    assert b" 413 " in status_line


def test_query_metrics_count_requests_of_batch_size(pod: RunningPod) -> None:
    batch = httpx.get(pod.url + "/admin/config", headers=pod.admin_headers).json()["batchSize"]
    labels = {"recmodel": "test-rm", "pool": "cpu"}
    text = httpx.get(pod.url + "/metrics").text
    requests_before = metric_value(text, "recsched_request_batch_items_count", **labels)
    queries_before = metric_value(text, "recsched_query_duration_seconds_count", **labels)
    dense, sparse = query_arrays(3 * batch + 1)
    assert httpx.post(pod.url + "/v2/models/rmc1/infer", json=json_query(dense, sparse)).is_success
    text = httpx.get(pod.url + "/metrics").text
    assert metric_value(text, "recsched_request_batch_items_count", **labels) == requests_before + 4
    assert (
        metric_value(text, "recsched_query_duration_seconds_count", **labels) == queries_before + 1
    )
    assert metric_value(text, "recsched_batch_size_items", **labels) == batch


def test_pod_is_not_ready_while_the_model_loads(tmp_path: Any) -> None:
    import threading

    from recsched_pod.dataplane.server import create_app

    release = threading.Event()

    def slow_factory(settings: Any) -> Any:
        release.wait(timeout=30)
        return build_model(settings.model, scale=settings.scale)

    app = create_app(pod_settings(tmp_path), model_factory=slow_factory)
    with serve_app(app, ready_path="/v2/health/live") as url:
        assert httpx.get(url + "/v2/health/ready").status_code == 503
        dense, sparse = query_arrays(2)
        refused = httpx.post(url + "/v2/models/rmc1/infer", json=json_query(dense, sparse))
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        release.set()
        wait_until(lambda: httpx.get(url + "/v2/health/ready").status_code == 200)
        assert httpx.post(url + "/v2/models/rmc1/infer", json=json_query(dense, sparse)).is_success
