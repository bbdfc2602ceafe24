"""A pod under test: its settings, URL and admin helpers (shared by pod and router tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from recsched_pod.settings import PodSettings

TOKEN = "test-admin-token"


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
        "scale": 0.001,
        "recmodel": "test-rm",
        "config_path": config_path,
        "admin_token": TOKEN,
        "max_query_items": 128,
        "config_poll_s": 0.05,
        "warmup_rounds": 1,
    }
    values.update(overrides)
    return PodSettings(**values)  # type: ignore[arg-type]
