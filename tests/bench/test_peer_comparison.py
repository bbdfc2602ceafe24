"""bench/peers.py's pieces that need no MLServer: the exported TorchScript is the pod's model, the
score check fails loudly on a difference, and the floors are read off the medians over rounds.
(MLServer itself lives in its own virtualenv under bench/.scratch, which CI does not install.)"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import peer_scores  # noqa: E402
from peer_servers import export_torchscript  # noqa: E402
from peers_report import floors, render  # noqa: E402

from recsched_pod.models import build_model, random_query  # noqa: E402

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated"),
]

METADATA = {
    "name": "rmc1",
    "inputs": [
        {"name": "dense_features", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "sparse_indices", "datatype": "INT64", "shape": [-1, 2, 3]},
    ],
    "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 1]}],
    "parameters": {"table_rows": "1000,1000", "max_query_items": 1024},
}


def test_exported_torchscript_scores_exactly_like_the_model_the_pod_builds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rmc1.pt"
    export_torchscript("rmc1", 0.01, 0, path)
    loaded = torch.jit.load(str(path))  # type: ignore[no-untyped-call]
    model = build_model("rmc1", scale=0.01, seed=0)
    for items in (1, 5, 300):
        dense, sparse = random_query(model.spec, items, torch.Generator().manual_seed(items))
        with torch.inference_mode():
            assert torch.equal(loaded(dense, sparse), model(dense, sparse))


def test_score_check_stops_the_bench_when_the_servers_disagree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def scores(url: str, model: str, body: bytes) -> np.ndarray[Any, Any]:
        items = len(orjson.loads(body)["inputs"][0]["data"]) // 4
        return np.full((items, 1), 0.5 if url == "ours" else 0.5001, dtype=np.float32)

    monkeypatch.setattr(peer_scores, "_scores", scores)
    with pytest.raises(SystemExit, match=r"differ by 0\.0001"):
        peer_scores.check_same_scores("ours", "theirs", "rmc1", METADATA, tolerance=1e-5)


def test_score_check_reports_the_worst_difference_per_size_when_within_tolerance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def scores(url: str, model: str, body: bytes) -> np.ndarray[Any, Any]:
        items = len(orjson.loads(body)["inputs"][0]["data"]) // 4
        return np.full((items, 1), 0.5 if url == "ours" else 0.500001, dtype=np.float32)

    monkeypatch.setattr(peer_scores, "_scores", scores)
    found = peer_scores.check_same_scores("ours", "theirs", "rmc1", METADATA, tolerance=1e-5)
    assert set(found["max_abs_difference_by_items"]) == {"1", "3", "64", "300", "1024"}
    assert max(found["max_abs_difference_by_items"].values()) == pytest.approx(1e-6, rel=0.2)


def _server(cap_100: float, cap_50: float, p95_ms: float) -> dict[str, Any]:
    latency = {"p50_ms": p95_ms / 2, "p95_ms": p95_ms, "p99_ms": p95_ms * 1.5}
    return {
        "capacity_100ms": {"capacity_qps": cap_100, "command": "recsched-loadtest capacity"},
        "capacity_50ms": {"capacity_qps": cap_50, "command": "recsched-loadtest capacity"},
        "common_load": {"latency": latency, "errors": {}, "command": "recsched-loadtest run"},
        "load_average_after": 1.0,
        "floor": {"latency": latency, "command": "recsched-loadtest run --rate 1"},
    }


def _results(ours: list[float], theirs: list[float], ours_50: list[float]) -> dict[str, Any]:
    rounds = [
        {"seed": i, "recsched": _server(a, c, 40.0), "mlserver": _server(b, 0.0, 300.0)}
        for i, (a, b, c) in enumerate(zip(ours, theirs, ours_50, strict=True))
    ]
    return {
        "machine": {"cpus": 2, "processor": "test", "load_average": 0.5},
        "date": "2026-12-03 14:00 UTC",
        "elapsed_s": 600,
        "commit": "abc1234",
        "args": {"rounds": 3, "batch": 256, "common_qps": 4.0, "trial_s": 5.0, "seed": 1,
                 "common_s": 20.0, "floor_qps": 1.0, "floor_s": 40.0},
        "versions": {"mlserver": "1.7.1"},
        "recsched": {"workers": 2, "batch": 256},
        "mlserver": {"label": "workers 2, threads 1, no batching"},
        "rounds": rounds,
        "sweep": {
            "date": "2026-12-03 12:38 UTC",
            "load_average_start": 1.0,
            "load_average_end": 1.0,
            "runs": {"floor_qps": 1.0, "floor_s": 40.0, "common_qps": 4.0, "common_s": 30.0},
            "rows": [
                {
                    "label": "workers 2, threads 1, no batching",
                    "floor": {"latency": {"p95_ms": 115.0}},
                    "common_load": {"latency": {"p95_ms": 192.0, "p99_ms": 265.0}},
                }
            ],
        },
        "check": {
            "scores": {"tolerance": 1e-5, "max_abs_difference_by_items": {"1": 0.0, "1024": 0.0}},
            "binary": {"status": 500, "body": "Internal Server Error"},
            "single_query_ms": {"recsched": {"611": 55.0}, "mlserver": {"611": 190.0}},
        },
    }  # fmt: skip


def test_floors_are_read_off_the_medians_over_rounds_not_the_best_round() -> None:
    # Medians: RecSched 30 vs MLServer 12 (2.5x, not met), although one round reads 60 vs 6.
    found = floors(_results([30.0, 60.0, 20.0], [12.0, 6.0, 14.0], [10.0, 0.0, 12.0]))
    assert found["capacity_ratio_100ms"] == pytest.approx(2.5)
    assert not found["capacity_ratio_met"]
    assert found["recsched_capacity_50ms_qps"] == 10.0
    assert found["recsched_meets_50ms"]


def test_report_gives_each_rounds_capacity_with_median_and_range() -> None:
    text = render(_results([30.0, 60.0, 20.0], [12.0, 6.0, 14.0], [10.0, 0.0, 12.0]))
    assert "| RecSched pod | 30.0, 60.0, 20.0 | 30.0 | 20.0-60.0 |" in text
    assert "2.50x MLServer's best" in text
    assert "**not met**" in text
    assert "| RecSched pod | 55.0 |" in text
    assert "got HTTP 500" in text
    assert "| workers 2, threads 1, no batching | 115 | 192 | 265 |" in text
