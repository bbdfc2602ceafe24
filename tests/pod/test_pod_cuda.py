"""A pod with `--device cuda`: whole queries on the GPU, scores equal to the CPU model's, several
queries in flight on per-worker streams, metrics labelled `device="cuda"`. Skipped without CUDA."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from recsched_pod.dataplane.server import create_app
from recsched_pod.models import build_model
from support.asgi_server import serve_app
from support.pod_fixtures import TEST_SCALE, json_body, pod_settings, rmc1_arrays

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.timeout(180),
]


def body_and_expected(items: int, seed: int) -> tuple[dict[str, Any], np.ndarray]:
    dense, sparse = rmc1_arrays(items, seed)
    model = build_model("rmc1", scale=TEST_SCALE).eval()
    with torch.inference_mode():
        expected = model(torch.from_numpy(dense), torch.from_numpy(sparse)).numpy()
    return json_body(dense, sparse), expected


def test_cuda_pod_serves_whole_queries_with_cpu_equal_scores(tmp_path: Path) -> None:
    settings = pod_settings(tmp_path, device="cuda", workers=4, max_query_items=1024)
    with serve_app(create_app(settings), "/v2/health/ready", timeout_s=120) as url:
        cases = [body_and_expected(items, seed) for seed, items in enumerate((1, 64, 300, 1024))]

        def send(case: tuple[dict[str, Any], np.ndarray]) -> np.ndarray:
            response = httpx.post(url + "/v2/models/rmc1/infer", json=case[0], timeout=60)
            assert response.status_code == 200, response.text
            output = response.json()["outputs"][0]
            return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])

        with ThreadPoolExecutor(max_workers=4) as executor:
            results = list(executor.map(send, cases * 3))
        for (_, expected), scores in zip(cases * 3, results, strict=True):
            np.testing.assert_allclose(scores, expected, rtol=1e-3, atol=1e-4)
        metrics = httpx.get(url + "/metrics").text
    assert 'device="cuda"' in metrics
    # whole queries: one request per query (the GPU batch cap is 1024 items)
    for line in metrics.splitlines():
        if line.startswith("recsched_request_batch_items_count{"):
            requests = float(line.rsplit(" ", 1)[1])
        if line.startswith("recsched_query_duration_seconds_count{"):
            queries = float(line.rsplit(" ", 1)[1])
    assert queries == 12 and requests == 12
