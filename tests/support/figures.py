"""Figures a test measured, written for the benchmark docs only when asked.

Tests assert behaviour, never speed; but some end-to-end tests are also the cheapest way to
produce a figure the docs record (the instrument's overhead, the real tuning loop's p95 gain).
Set `RECSCHED_TEST_FIGURES_DIR` and each such test writes `<dir>/<name>.json` (merging runs into
a list, so repeated runs give a count and a spread); unset, nothing is written.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FIGURES_DIR_ENV = "RECSCHED_TEST_FIGURES_DIR"


def record_figures(name: str, figures: Mapping[str, Any]) -> Path | None:
    """Append one run's `figures` to `<RECSCHED_TEST_FIGURES_DIR>/<name>.json`, if set."""
    folder = os.environ.get(FIGURES_DIR_ENV)
    if not folder:
        return None
    path = Path(folder) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    runs: list[Any] = json.loads(path.read_text()) if path.exists() else []
    runs.append(
        {
            "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.node()} nproc={os.cpu_count()}",
            "load_average_1m": os.getloadavg()[0],
            **figures,
        }
    )
    path.write_text(json.dumps(runs, indent=2) + "\n")
    return path
