"""Live config: pushes need the token, change batch size and workers without a restart, ignore
stale generations, and the config file is re-read when it changes."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import numpy as np
import pytest

from support.pod_fixtures import RunningPod, rmc1_query
from support.waiting import wait_until


def served(pod: RunningPod) -> dict[str, Any]:
    response = httpx.get(pod.url + "/admin/config", headers=pod.admin_headers)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def push(pod: RunningPod, **document: int) -> httpx.Response:
    return httpx.put(pod.url + "/admin/config", json=document, headers=pod.admin_headers)


def request_count(pod: RunningPod) -> float:
    for line in httpx.get(pod.url + "/metrics").text.splitlines():
        if line.startswith("recsched_request_batch_items_count{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("request count not exported")


def infer(pod: RunningPod, items: int) -> httpx.Response:
    return httpx.post(pod.url + "/v2/models/rmc1/infer", json=rmc1_query(items, seed=items))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}])
def test_admin_refuses_requests_without_the_token(pod: RunningPod, headers: dict[str, str]) -> None:
    assert httpx.get(pod.url + "/admin/config", headers=headers).status_code == 401
    response = httpx.put(pod.url + "/admin/config", json={"generation": 99}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert served(pod)["generation"] != 99


def test_push_changes_batch_size_for_the_next_query(pod: RunningPod) -> None:
    current = served(pod)
    response = push(
        pod, generation=current["generation"] + 1, batchSize=5, offloadThreshold=300, workers=2
    )
    assert response.status_code == 200 and response.json()["applied"] is True
    assert served(pod)["batchSize"] == 5
    before = request_count(pod)
    assert infer(pod, 23).is_success
    assert request_count(pod) == before + 5  # ceil(23 / 5)


def test_stale_generation_is_ignored(pod: RunningPod) -> None:
    current = served(pod)
    push(pod, generation=current["generation"] + 2, batchSize=7, offloadThreshold=300, workers=2)
    stale = push(
        pod, generation=current["generation"] + 1, batchSize=100, offloadThreshold=300, workers=2
    )
    assert stale.status_code == 200
    assert stale.json()["applied"] is False
    assert "stale generation" in stale.json()["reason"]
    assert served(pod)["batchSize"] == 7


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"generation": 1, "batchSize": 0}, "batchSize"),
        ({"generation": -1}, "generation"),
        ({"workers": "many"}, "workers"),
    ],
)
def test_invalid_push_is_a_400_naming_the_field(
    pod: RunningPod, document: dict[str, Any], field: str
) -> None:
    before = served(pod)
    response = httpx.put(pod.url + "/admin/config", json=document, headers=pod.admin_headers)
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert served(pod) == before


def test_config_file_change_is_applied_without_restart(pod: RunningPod) -> None:
    generation = served(pod)["generation"] + 1
    pod.write_config(generation=generation, batchSize=11, offloadThreshold=200, workers=1)
    wait_until(lambda: served(pod)["batchSize"] == 11)
    assert served(pod)["workers"] == 1
    metrics = httpx.get(pod.url + "/metrics").text
    labels = 'device="cpu",pool="cpu",recmodel="test-rm"'
    assert f"recsched_config_generation{{{labels}}} {float(generation)}" in metrics
    assert 'recsched_workers{device="cpu",pool="cpu",recmodel="test-rm"} 1.0' in metrics


def test_unparseable_config_file_keeps_the_served_config(
    pod: RunningPod, caplog: pytest.LogCaptureFixture
) -> None:
    before = served(pod)
    caplog.set_level(logging.WARNING, logger="recsched_pod.live_config")
    pod.config_path.write_text("{ broken", encoding="utf-8")
    # The pod's file watcher read the broken file and said it skipped it.
    wait_until(lambda: any("config file change skipped" in r.getMessage() for r in caplog.records))
    assert served(pod) == before
    assert infer(pod, 3).is_success
    np.testing.assert_equal(served(pod)["generation"], before["generation"])
