"""The pod under abuse: overload gets a fast 503 with Retry-After and the pod stays up; a config
change never re-splits a query in flight; random bodies and headers never get a 5xx or a hang."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsched_pod.dataplane.server import create_app
from recsched_pod.models import RecommendationModel, build_model
from recsched_pod.settings import PodSettings
from support.asgi_server import serve_pod
from support.pod_fixtures import TOKEN, RunningPod, pod_settings, rmc1_query
from support.waiting import wait_until


class RecordingModel(RecommendationModel):
    """The real RMC1, recording the size of every request it runs. While `gate` is cleared, each
    request waits for it (bounded) after being recorded: a test holds a query in flight for
    exactly as long as it needs, so no outcome depends on how fast the machine is."""

    def __init__(self, inner: RecommendationModel) -> None:
        super().__init__(inner.spec)
        self.inner = inner
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def forward(self, dense: torch.Tensor | None, sparse: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(sparse.shape[0]))
        assert self.gate.wait(timeout=30), "the test never opened the gate"
        return self.inner(dense, sparse)


def wait_for_requests(model: RecordingModel, count: int) -> None:
    """Return once the model has started `count` requests in all (polled, with a deadline)."""
    wait_until(lambda: len(model.sizes) >= count, interval_s=0.001)


@pytest.fixture
def slow_pod(tmp_path: Path) -> Iterator[tuple[RunningPod, RecordingModel]]:
    holder: list[RecordingModel] = []

    def factory(settings: PodSettings) -> RecommendationModel:
        holder.append(RecordingModel(build_model("rmc1", scale=settings.scale)))
        return holder[0]

    # eager: a trace would record one forward pass and drop the gate and the size record
    settings = pod_settings(
        tmp_path,
        max_queue_requests=6,
        batch_size=2,
        workers=1,
        config_path=None,
        warmup_rounds=0,
        graph_mode="eager",
    )
    with serve_pod(settings, create_app(settings, model_factory=factory)) as url:
        yield RunningPod(url, settings, tmp_path / "unused.json"), holder[0]


def test_overload_gets_a_503_with_retry_after_before_any_work_and_the_pod_stays_up(
    slow_pod: tuple[RunningPod, RecordingModel],
) -> None:
    pod, model = slow_pod
    results: list[int] = []

    def send(items: int = 4) -> None:
        results.append(
            httpx.post(
                pod.url + "/v2/models/rmc1/infer", json=rmc1_query(items), timeout=30
            ).status_code
        )

    # 12 queries of 2 requests each against a limit of 6 queued requests, while nothing
    # finishes (gate closed): some must be refused at once, whatever the timing.
    model.gate.clear()
    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    wait_until(lambda: 503 in results)
    model.gate.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 12
    assert results.count(200) >= 1
    assert results.count(503) >= 1
    assert set(results) <= {200, 503}
    # A blocker of 8 items (4 requests at B = 2) is held on the worker by the closed gate, so
    # its pending requests stay; a query of 12 items (6 requests) then takes the count past the
    # limit of 6 and must be refused before any of its requests runs.
    started = len(model.sizes)
    model.gate.clear()
    blocker = threading.Thread(target=send, args=(8,))
    blocker.start()
    wait_for_requests(model, started + 1)
    refused = httpx.post(pod.url + "/v2/models/rmc1/infer", json=rmc1_query(12), timeout=30)
    model.gate.set()
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert int(refused.headers["Retry-After-Ms"]) > 0
    assert "overloaded" in refused.json()["error"]
    blocker.join(timeout=30)
    assert model.sizes[started:] == [2, 2, 2, 2], "only the blocker's four requests ran"
    assert httpx.get(pod.url + "/v2/health/live").status_code == 200
    assert httpx.post(pod.url + "/v2/models/rmc1/infer", json=rmc1_query(2)).status_code == 200
    metrics = httpx.get(pod.url + "/metrics").text
    assert 'reason="overloaded"' in metrics


def test_batch_size_change_never_resplits_a_query_in_flight(
    slow_pod: tuple[RunningPod, RecordingModel],
) -> None:
    pod, model = slow_pod
    model.sizes.clear()
    outcome: list[int] = []
    first = threading.Thread(
        target=lambda: outcome.append(
            httpx.post(
                pod.url + "/v2/models/rmc1/infer", json=rmc1_query(6), timeout=30
            ).status_code
        )
    )
    model.gate.clear()
    first.start()
    wait_for_requests(model, 1)  # the first of three requests is held on the worker
    pushed = httpx.put(
        pod.url + "/admin/config",
        json={"generation": 5, "batchSize": 8, "offloadThreshold": 100, "workers": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert pushed.json()["applied"] is True
    model.gate.set()
    first.join(timeout=30)
    assert outcome == [200]
    assert model.sizes == [2, 2, 2]
    assert httpx.post(pod.url + "/v2/models/rmc1/infer", json=rmc1_query(6)).status_code == 200
    assert model.sizes == [2, 2, 2, 6]


@pytest.fixture(scope="module")
def fuzz_pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = pod_settings(tmp_path_factory.mktemp("fuzz"), max_query_items=64)
    with serve_pod(settings) as url:
        yield url


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
tensor_headers = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["dense_features", "sparse_indices", "other"]),
        "datatype": st.sampled_from(["FP32", "INT64", "BYTES", "BOOL"]),
    },
    optional={
        "shape": st.lists(st.integers(-2, 200), max_size=4),
        "data": st.lists(st.integers(-5, 5000) | st.floats(allow_nan=True), max_size=20),
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-8, 4096) | st.text(max_size=3)}
        ),
    },
)
bodies = st.one_of(
    st.binary(max_size=512),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {"inputs": st.lists(tensor_headers, max_size=3)},
        optional={
            "outputs": json_values,
            "parameters": json_values,
            "id": json_values,
        },
    ).map(lambda doc: json.dumps(doc).encode()),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=bodies,
    header_length=st.none() | st.integers(-5, 600).map(str) | st.text(max_size=4),
    tail=st.binary(max_size=256),
)
def test_random_bodies_and_headers_never_get_a_5xx_or_hang(
    fuzz_pod: str, body: bytes, header_length: str | None, tail: bytes
) -> None:
    headers = {}
    if header_length is not None and header_length.isprintable() and header_length.isascii():
        headers["Inference-Header-Content-Length"] = header_length
    response = httpx.post(
        fuzz_pod + "/v2/models/rmc1/infer", content=body + tail, headers=headers, timeout=10
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]
