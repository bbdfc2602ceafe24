"""The router in front of a CPU pod and an emulated GPU pod, all real servers on loopback:
routing at the threshold, live threshold changes, fallback, tritonclient, identical errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from recsched_pod.dataplane.server import create_app
from recsched_pod.router.app import create_router_app
from support.asgi_server import free_port, serve_app, serve_router
from support.pod_fixtures import TOKEN, binary_body, pod_settings, rmc1_arrays, rmc1_query

THRESHOLD = 50
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class Cluster:
    router: str
    cpu_pod: str
    gpu_pod: str


def write_profile(path: Path, latency_s: float) -> Path:
    path.write_text(
        json.dumps(
            {
                "device_name": "test profile",
                "models": {"rmc1": {"batch_items": [1, 1024], "latency_s": [latency_s, latency_s]}},
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("cluster")
    config = {"generation": 1, "batchSize": 16, "offloadThreshold": THRESHOLD, "workers": 1}
    for name in ("cpu", "gpu", "router"):
        (base / name).mkdir()
        (base / name / "config.json").write_text(json.dumps(config), encoding="utf-8")
    cpu = pod_settings(base / "cpu")
    gpu = pod_settings(
        base / "gpu",
        device="emulated",
        gpu_profile_path=write_profile(base / "profile.json", 0.002),
    )
    with (
        serve_app(create_app(cpu), "/v2/health/ready") as cpu_url,
        serve_app(create_app(gpu), "/v2/health/ready") as gpu_url,
    ):
        router = pod_settings(
            base / "router",
            role="router",
            cpu_endpoints=cpu_url.removeprefix("http://"),
            gpu_endpoints=gpu_url.removeprefix("http://"),
            health_check_s=0.1,
        )
        with serve_router(create_router_app(router)) as router_url:
            yield Cluster(router_url, cpu_url, gpu_url)


def query(items: int, seed: int = 0) -> dict[str, Any]:
    return rmc1_query(items, seed)


def routed(router_url: str) -> dict[str, float]:
    counts = {"cpu": 0.0, "gpu": 0.0}
    for line in httpx.get(router_url + "/metrics").text.splitlines():
        if line.startswith("recsched_routed_queries_total{"):
            pool = line.split('pool="', 1)[1].split('"', 1)[0]
            counts[pool] = float(line.rsplit(" ", 1)[1])
    return counts


def metric(url: str, prefix: str) -> float:
    total = 0.0
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


def set_threshold(router_url: str, threshold: int) -> None:
    current = httpx.get(router_url + "/admin/config", headers=AUTH).json()
    current.update(generation=current["generation"] + 1, offloadThreshold=threshold)
    assert httpx.put(router_url + "/admin/config", json=current, headers=AUTH).json()["applied"]


def test_queries_route_by_size_at_the_threshold(cluster: Cluster) -> None:
    set_threshold(cluster.router, THRESHOLD)
    before = routed(cluster.router)
    assert httpx.post(
        cluster.router + "/v2/models/rmc1/infer", json=query(THRESHOLD - 1)
    ).is_success
    middle = routed(cluster.router)
    assert middle["cpu"] == before["cpu"] + 1 and middle["gpu"] == before["gpu"]
    assert httpx.post(cluster.router + "/v2/models/rmc1/infer", json=query(THRESHOLD)).is_success
    after = routed(cluster.router)
    assert after["gpu"] == middle["gpu"] + 1 and after["cpu"] == middle["cpu"]


def test_threshold_change_applies_from_the_next_query(cluster: Cluster) -> None:
    set_threshold(cluster.router, 10)
    before = routed(cluster.router)
    assert httpx.post(cluster.router + "/v2/models/rmc1/infer", json=query(20)).is_success
    assert routed(cluster.router)["gpu"] == before["gpu"] + 1
    set_threshold(cluster.router, 1025)
    assert httpx.post(cluster.router + "/v2/models/rmc1/infer", json=query(20)).is_success
    assert routed(cluster.router)["cpu"] == before["cpu"] + 1


def test_scores_through_the_router_equal_the_pod_s(cluster: Cluster) -> None:
    body = query(60, seed=4)
    via_router = httpx.post(cluster.router + "/v2/models/rmc1/infer", json=body).json()
    direct = httpx.post(cluster.cpu_pod + "/v2/models/rmc1/infer", json=body).json()
    np.testing.assert_allclose(
        via_router["outputs"][0]["data"], direct["outputs"][0]["data"], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_works_through_the_router(cluster: Cluster, binary: bool) -> None:
    import tritonclient.http as triton

    dense, sparse = rmc1_arrays(70)
    client = triton.InferenceServerClient(cluster.router.removeprefix("http://"))
    try:
        assert client.is_server_ready() and client.is_model_ready("rmc1")
        inputs = [
            triton.InferInput("dense_features", list(dense.shape), "FP32"),
            triton.InferInput("sparse_indices", list(sparse.shape), "INT64"),
        ]
        inputs[0].set_data_from_numpy(dense, binary_data=binary)
        inputs[1].set_data_from_numpy(sparse, binary_data=binary)
        result = client.infer(
            "rmc1", inputs, outputs=[triton.InferRequestedOutput("scores", binary_data=binary)]
        )
        assert result.as_numpy("scores").shape == (70, 1)
    finally:
        client.close()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda q: q["inputs"][0].update(datatype="FP16"),
        lambda q: q["inputs"][1].update(shape=[3, 8, 2]),
        lambda q: q["inputs"].pop(),
        lambda q: q["inputs"][1]["data"].__setitem__(5, 10**9),  # found by the pod, passed back
        lambda q: q.update(inputs="nope"),
    ],
)
def test_bad_queries_get_the_same_error_at_the_router_as_at_the_pod(
    cluster: Cluster, mutate: Any
) -> None:
    body = query(3)
    mutate(body)
    at_router = httpx.post(cluster.router + "/v2/models/rmc1/infer", json=body)
    at_pod = httpx.post(cluster.cpu_pod + "/v2/models/rmc1/infer", json=body)
    assert at_router.status_code == at_pod.status_code == 400
    assert at_router.json() == at_pod.json()


def test_too_many_items_is_refused_at_the_router(cluster: Cluster) -> None:
    response = httpx.post(cluster.router + "/v2/models/rmc1/infer", json=query(129))
    assert response.status_code == 413
    assert "129 items" in response.json()["error"]


def test_emulated_gpu_pod_is_labelled_and_serves_queries_one_at_a_time(cluster: Cluster) -> None:
    metrics = httpx.get(cluster.gpu_pod + "/metrics").text
    assert 'device="emulated"' in metrics
    lag_count = metric(cluster.gpu_pod, "recsched_request_compute_seconds_count")
    compute_sum = metric(cluster.gpu_pod, "recsched_request_compute_seconds_sum")
    assert httpx.post(cluster.gpu_pod + "/v2/models/rmc1/infer", json=query(100)).is_success
    # the whole query is one request (no split below the GPU batch cap) served for >= 2 ms
    assert metric(cluster.gpu_pod, "recsched_request_compute_seconds_count") == lag_count + 1
    assert metric(cluster.gpu_pod, "recsched_request_compute_seconds_sum") - compute_sum >= 0.002


def test_gpu_pool_down_falls_back_to_the_cpu_pool(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    cpu = pod_settings(tmp_path / "cpu")
    with serve_app(create_app(cpu), "/v2/health/ready") as cpu_url:
        router = pod_settings(
            tmp_path,
            role="router",
            config_path=None,
            health_check_s=0.1,
            cpu_endpoints=cpu_url.removeprefix("http://"),
            gpu_endpoints=f"127.0.0.1:{free_port()}",
        )
        with serve_router(create_router_app(router)) as router_url:
            set_threshold(router_url, 8)
            before = metric(router_url, "recsched_router_fallbacks_total")
            response = httpx.post(router_url + "/v2/models/rmc1/infer", json=query(30))
            assert response.status_code == 200
            assert metric(router_url, "recsched_router_fallbacks_total") == before + 1
            assert routed(router_url)["cpu"] >= 1


def test_router_app_also_serves_under_uvicorn_s_own_protocol(
    cluster: Cluster, tmp_path: Path
) -> None:
    # `recsched-pod --role router` runs uvicorn's stock protocol until the CLI selects
    # `lean_http` (docs/benchmarks/router.md): the app must be right under both.
    router = pod_settings(
        tmp_path,
        role="router",
        config_path=None,
        health_check_s=0.1,
        cpu_endpoints=cluster.cpu_pod.removeprefix("http://"),
    )
    body, headers = binary_body(*rmc1_arrays(5, seed=2))
    with serve_app(create_router_app(router), "/v2/health/ready") as router_url:
        via_router = httpx.post(router_url + "/v2/models/rmc1/infer", content=body, headers=headers)
    direct = httpx.post(cluster.cpu_pod + "/v2/models/rmc1/infer", content=body, headers=headers)
    assert via_router.status_code == 200
    assert via_router.content == direct.content
