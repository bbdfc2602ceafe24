"""bench/harness.py, the one launcher and body source of the benches: its bodies are what the pod
decodes (they come from the load test's encoder, so a bench cannot drift from the protocol), a
pod it starts is ready and serves, and is gone after the block; the run header names where and
when a figure was measured."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
from batch_landscape import bucket_quantile_ms  # noqa: E402

from recsched_pod.http.protocol import decode_body  # noqa: E402
from recsched_pod.models import model_spec  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("model", ["rmc1", "wnd", "ncf"])
def test_binary_bodies_decode_in_the_pod_to_distinct_valid_queries(model: str) -> None:
    spec = model_spec(model, scale=0.01)
    signature = harness.offline_signature(model)
    bodies = harness.binary_bodies(signature, items=24, count=3, seed=5)
    decoded = [
        decode_body(body, headers[harness.HEADER_LENGTH], spec, max_items=1024)
        for body, headers in bodies
    ]
    assert [query.items for query in decoded] == [24, 24, 24]
    assert all(q.sparse.shape == (24, spec.num_tables, spec.lookups_per_table) for q in decoded)
    assert not np.array_equal(decoded[0].sparse, decoded[1].sparse)
    assert (decoded[0].dense is None) == (spec.dense_features == 0)
    # The same seed gives the same bodies: a bench's inputs are reproducible.
    assert harness.binary_bodies(signature, items=24, count=3, seed=5) == bodies


def test_json_bodies_carry_the_same_shapes_as_json() -> None:
    signature = harness.offline_signature("rmc1")
    (body, headers), *_ = harness.json_bodies(signature, items=7, count=2, seed=1)
    assert headers["Content-Type"] == "application/json"
    decoded = decode_body(body, None, model_spec("rmc1", scale=0.01), max_items=1024)
    assert decoded.items == 7


def test_run_header_names_machine_load_date_command_and_commit() -> None:
    header = harness.run_header(["bench/example.py", "--rounds", "3"])
    assert header["machine"]["cpus"] >= 1 and header["machine"]["cpu_model"]
    assert len(header["load_average_before"]) == 3
    assert header["date"].endswith("UTC")
    assert header["command"].endswith("bench/example.py --rounds 3")
    assert header["commit"]
    line = harness.header_line({**header, "load_average_after": [9.5, 0.0, 0.0]})
    assert "`" + header["command"] + "`" in line and "9.5 after" in line


def test_bucket_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    name = "recsched_query_duration_seconds_bucket"
    counts = {f"{name}{{le=0.01}}": 0.0, f"{name}{{le=0.02}}": 100.0, f"{name}{{le=+Inf}}": 100.0}
    # 95 of 100 queries lie below rank 95 inside (0.01, 0.02]: 0.01 + 0.95 * 0.01 s.
    assert bucket_quantile_ms(counts) == pytest.approx(19.5)


@pytest.mark.slow
def test_running_pod_is_ready_serves_a_body_and_is_stopped_after(tmp_path: Path) -> None:
    signature = harness.offline_signature("rmc1")
    ((body, headers),) = harness.binary_bodies(signature, items=16)
    with harness.running_pod("rmc1", workers=1, batch=8, workdir=tmp_path) as pod:
        request = urllib.request.Request(
            f"{pod.url}/v2/models/rmc1/infer", data=body, headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200
        served = harness.push_config(pod.url, {"batchSize": 16})
        assert served["batchSize"] == 16
        totals = harness.metric_totals(pod.url, ["recsched_request_compute_seconds_count"])
        assert totals["recsched_request_compute_seconds_count"] == 2  # 16 items at B = 8
        process = pod.process
    assert process.poll() is not None
