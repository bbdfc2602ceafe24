"""A pod under test: its settings, URL and admin helpers (shared by pod and router tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from recsched_pod.settings import PodSettings

TOKEN = "test-admin-token"
TEST_SCALE = 0.001  # RMC1 at 1/1000 of the paper's rows (the 1,000-row floor): fast to build


@dataclass(frozen=True)
class RunningPod:
    url: str
    settings: PodSettings
    config_path: Path

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def write_config(self, **document: int) -> None:
        self.config_path.write_text(json.dumps(document), encoding="utf-8")


def pod_settings(tmp_path: Path, **overrides: object) -> PodSettings:
    config_path = tmp_path / "config.json"
    if not config_path.exists():
        config_path.write_text(
            json.dumps({"generation": 1, "batchSize": 16, "offloadThreshold": 1025, "workers": 2}),
            encoding="utf-8",
        )
    values: dict[str, object] = {
        "model": "rmc1",
        "scale": TEST_SCALE,
        "recmodel": "test-rm",
        "config_path": config_path,
        "admin_token": TOKEN,
        "max_query_items": 128,
        "config_poll_s": 0.05,
        "warmup_rounds": 1,
    }
    values.update(overrides)
    return PodSettings(**values)  # type: ignore[arg-type]


def json_body(dense: Any, sparse: Any, **extra: Any) -> dict[str, Any]:
    """An OIP v2 JSON infer body; `dense` may be None (models without dense input)."""
    inputs = [] if dense is None else [("dense_features", "FP32", np.asarray(dense))]
    inputs.append(("sparse_indices", "INT64", np.asarray(sparse)))
    return {
        "inputs": [
            {
                "name": name,
                "datatype": datatype,
                "shape": list(array.shape),
                "data": array.reshape(-1).tolist(),
            }
            for name, datatype, array in inputs
        ],
        **extra,
    }


def binary_body(dense: Any, sparse: Any) -> tuple[bytes, dict[str, str]]:
    """An OIP v2 binary-extension infer body (binary output asked for) and its headers."""
    inputs = [] if dense is None else [("dense_features", "FP32", np.asarray(dense, "<f4"))]
    inputs.append(("sparse_indices", "INT64", np.asarray(sparse, "<i8")))
    header = {
        "inputs": [
            {
                "name": name,
                "datatype": datatype,
                "shape": list(array.shape),
                "parameters": {"binary_data_size": array.nbytes},
            }
            for name, datatype, array in inputs
        ],
        "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
    }
    json_part = orjson.dumps(header)
    body = json_part + b"".join(array.tobytes() for _, _, array in inputs)
    return body, {
        "Inference-Header-Content-Length": str(len(json_part)),
        "Content-Type": "application/octet-stream",
    }


def rmc1_arrays(items: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A valid RMC1 query (the scale the test pods serve) as numpy arrays."""
    import torch

    from recsched_pod.models import model_spec, random_query

    dense, sparse = random_query(
        model_spec("rmc1", scale=TEST_SCALE), items, torch.Generator().manual_seed(seed)
    )
    assert dense is not None
    return dense.numpy(), sparse.numpy()


def rmc1_query(items: int, seed: int = 0) -> dict[str, Any]:
    """A valid RMC1 JSON infer body of `items` items."""
    return json_body(*rmc1_arrays(items, seed))
