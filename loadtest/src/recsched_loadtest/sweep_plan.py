"""The list of configurations a sweep applies, and the shape of its results (pure).

A sweep file is a JSON list of objects holding config-document knobs (`batchSize`,
`offloadThreshold`, `workers`, ...) and an optional `label`; each is merged onto the document the
endpoint serves, with the next generation. `--batch-sizes 8,16,32` is shorthand for the common case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from recsched_loadtest.capacity_search import CapacityResult
from recsched_loadtest.errors import SpecError

KNOWN_KNOBS = ("batchSize", "offloadThreshold", "workers")


@dataclass(frozen=True)
class SweepConfig:
    label: str
    knobs: dict[str, Any]


@dataclass(frozen=True)
class SweepPoint:
    config: SweepConfig
    applied: dict[str, Any]  # the document the endpoint served after the push
    result: CapacityResult


def _label(knobs: dict[str, Any]) -> str:
    return ",".join(f"{key}={value}" for key, value in knobs.items())


def parse_sweep_configs(text: str, source: str = "sweep file") -> list[SweepConfig]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{source}: not JSON: {exc}") from exc
    if not isinstance(document, list) or not document:
        raise SpecError(f"{source}: expected a non-empty JSON list of config objects")
    configs = []
    for position, entry in enumerate(document):
        if not isinstance(entry, dict):
            raise SpecError(f"{source}[{position}]: expected an object, got {entry!r}")
        knobs = {key: value for key, value in entry.items() if key != "label"}
        if "generation" in knobs:
            raise SpecError(f"{source}[{position}]: 'generation' is set by the sweep, not the file")
        if not knobs:
            raise SpecError(f"{source}[{position}]: no config knobs")
        for key in KNOWN_KNOBS:
            if key in knobs and (not isinstance(knobs[key], int) or knobs[key] < 1):
                raise SpecError(f"{source}[{position}]: {key} must be an integer >= 1")
        configs.append(SweepConfig(str(entry.get("label") or _label(knobs)), knobs))
    return configs


def batch_size_configs(text: str) -> list[SweepConfig]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise SpecError(f"--batch-sizes {text!r}: expected comma-separated integers") from exc
    if not sizes or min(sizes) < 1:
        raise SpecError(f"--batch-sizes {text!r}: expected integers >= 1")
    return [SweepConfig(f"batchSize={size}", {"batchSize": size}) for size in sizes]
