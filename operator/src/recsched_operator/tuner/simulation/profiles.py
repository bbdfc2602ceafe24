"""Per-batch service-time profiles: how long one request of b items takes on one worker.

A profile is measured data (see `bench/profile_models.py`), kept as one JSON file per model in
`recsched_operator/profiles/`. The simulator needs the time for every request size from 1 to the
largest query, so `ServiceProfile` interpolates linearly in log(items)-log(seconds) space between
the measured grid points (service time is close to a power law piecewise) and extrapolates the
last segment's slope beyond the grid. Lookup tables are precomputed once because the simulator
reads them millions of times.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_QUERY_ITEMS = 1024
"""Largest query size DeepRecInfra draws (every script clips sizes to 1024)."""


class ProfileError(ValueError):
    """A profile file is missing or malformed."""


def _log_interp(
    grid_items: tuple[int, ...], seconds: tuple[float, ...], max_items: int
) -> list[float]:
    """Seconds for 0..max_items items (index = items; index 0 is unused and set to 0)."""
    log_x = np.log(np.asarray(grid_items, dtype=np.float64))
    log_y = np.log(np.asarray(seconds, dtype=np.float64))
    items = np.arange(1, max_items + 1, dtype=np.float64)
    log_items = np.log(items)
    values = np.interp(log_items, log_x, log_y)
    if len(log_x) >= 2:
        # np.interp clamps; extend the end segments' slopes instead so a 1024-item request on a grid
        # measured up to 512 is not priced like a 512-item one.
        low_slope = (log_y[1] - log_y[0]) / (log_x[1] - log_x[0])
        high_slope = (log_y[-1] - log_y[-2]) / (log_x[-1] - log_x[-2])
        below = log_items < log_x[0]
        above = log_items > log_x[-1]
        values[below] = log_y[0] + low_slope * (log_items[below] - log_x[0])
        values[above] = log_y[-1] + high_slope * (log_items[above] - log_x[-1])
    table: list[float] = [0.0, *np.exp(values).tolist()]
    return table


@dataclass(frozen=True)
class ServiceProfile:
    """Measured per-request service times of one model on one worker (CPU) and one GPU.

    `cpu_seconds[i]` is the median time of one forward pass over `batch_items[i]` items on one
    thread; `gpu_seconds[i]` the time for the same batch on the GPU pool's device. `source` keeps
    the provenance (machine, date, method, whether the GPU numbers are emulated).
    """

    model: str
    batch_items: tuple[int, ...]
    cpu_seconds: tuple[float, ...]
    gpu_seconds: tuple[float, ...]
    source: dict[str, Any] = field(default_factory=dict, compare=False)
    _cpu_table: list[float] = field(init=False, repr=False, compare=False)
    _gpu_table: list[float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.batch_items)
        if n == 0 or len(self.cpu_seconds) != n or len(self.gpu_seconds) != n:
            raise ProfileError(
                f"profile {self.model!r}: grid and time lists must match and be non-empty"
            )
        if list(self.batch_items) != sorted(set(self.batch_items)) or self.batch_items[0] < 1:
            raise ProfileError(f"profile {self.model!r}: batch_items must be increasing and >= 1")
        if min(self.cpu_seconds) <= 0 or min(self.gpu_seconds) <= 0:
            raise ProfileError(f"profile {self.model!r}: service times must be positive")
        max_items = max(MAX_QUERY_ITEMS, self.batch_items[-1])
        object.__setattr__(
            self, "_cpu_table", _log_interp(self.batch_items, self.cpu_seconds, max_items)
        )
        object.__setattr__(
            self, "_gpu_table", _log_interp(self.batch_items, self.gpu_seconds, max_items)
        )

    @property
    def cpu_table_s(self) -> list[float]:
        """CPU seconds indexed by request items (index 0 unused)."""
        return self._cpu_table

    @property
    def gpu_table_s(self) -> list[float]:
        """GPU seconds indexed by query items (index 0 unused)."""
        return self._gpu_table

    def cpu_scaled(self, factor: float) -> ServiceProfile:
        """The same profile with every CPU time times `factor` (a machine faster or slower than
        the one that measured it); the GPU times stay."""
        return ServiceProfile(
            self.model,
            self.batch_items,
            tuple(seconds * factor for seconds in self.cpu_seconds),
            self.gpu_seconds,
            {**self.source, "cpu_factor": factor},
        )

    def with_gpu_times(
        self, batch_items: tuple[int, ...], seconds: tuple[float, ...], device: str
    ) -> ServiceProfile:
        """The same CPU times with the GPU pool's times measured on another device (e.g. the
        H200 profile of `bench/gpu_profile.py`), interpolated onto this profile's grid in
        log(items)-log(seconds) space like every other lookup."""
        table = _log_interp(batch_items, seconds, max(self.batch_items[-1], batch_items[-1]))
        return ServiceProfile(
            self.model,
            self.batch_items,
            self.cpu_seconds,
            tuple(table[items] for items in self.batch_items),
            {**self.source, "gpu_device": device},
        )

    def cpu_request_s(self, items: int) -> float:
        return self._cpu_table[min(max(items, 1), len(self._cpu_table) - 1)]

    def gpu_query_s(self, items: int) -> float:
        return self._gpu_table[min(max(items, 1), len(self._gpu_table) - 1)]

    def cpu_query_work_s(
        self, items: npt.NDArray[np.int64], batch_size: int
    ) -> npt.NDArray[np.float64]:
        """Total worker-seconds a CPU pod spends on queries of `items` split at `batch_size`."""
        full = items // batch_size
        rest = items - full * batch_size
        table = np.asarray(self._cpu_table, dtype=np.float64)
        work: npt.NDArray[np.float64] = full * table[batch_size] + np.where(
            rest > 0, table[np.maximum(rest, 1)], 0.0
        )
        return work

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            **self.source,
            "cpu": {"batch_items": list(self.batch_items), "seconds": list(self.cpu_seconds)},
            "gpu": {
                "batch_items": list(self.batch_items),
                "seconds": list(self.gpu_seconds),
                "device": self.source.get("gpu_device", "unknown"),
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceProfile:
        try:
            cpu = data["cpu"]
            gpu = data["gpu"]
            if list(cpu["batch_items"]) != list(gpu["batch_items"]):
                raise ProfileError("cpu and gpu grids differ")
            source = {k: v for k, v in data.items() if k not in ("model", "cpu", "gpu")}
            source["gpu_device"] = gpu.get("device", "unknown")
            return cls(
                model=str(data["model"]),
                batch_items=tuple(int(b) for b in cpu["batch_items"]),
                cpu_seconds=tuple(float(s) for s in cpu["seconds"]),
                gpu_seconds=tuple(float(s) for s in gpu["seconds"]),
                source=source,
            )
        except (KeyError, TypeError) as exc:
            raise ProfileError(f"malformed profile: {exc!r}") from exc


PROFILE_DIR = Path(__file__).resolve().parents[2] / "profiles"
"""Shipped profiles (package data next to the code; plain paths because the files always lie on
disk, and importlib.resources trips over the package while it has no __init__ of its own)."""


def profile_names() -> list[str]:
    """Models with a profile shipped in the package, sorted."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.json"))


def load_profile(model: str, path: Path | None = None) -> ServiceProfile:
    """The shipped profile of `model`, or the one in `path` when given."""
    path = path or PROFILE_DIR / f"{model}.json"
    if not path.is_file():
        raise ProfileError(f"no profile for model {model!r} at {path}; have {profile_names()}")
    text = path.read_text()
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ProfileError("a profile is a JSON object")
    return ServiceProfile.from_dict(data)


def synthetic_profile(
    model: str = "synthetic",
    *,
    request_overhead_s: float = 2e-4,
    per_item_s: float = 2e-5,
    per_item_exponent: float = 0.85,
    gpu_speedup_small: float = 0.4,
    gpu_speedup_large: float = 4.0,
) -> ServiceProfile:
    """A made-up profile with the shape real ones have (fixed cost per call, sub-linear per item).

    For tests only: committed profiles are measured, never synthetic.
    """
    grid = tuple(2**k for k in range(11))
    cpu = tuple(request_overhead_s + per_item_s * b**per_item_exponent for b in grid)
    fractions = np.linspace(0.0, 1.0, len(grid))
    speedups = gpu_speedup_small * (gpu_speedup_large / gpu_speedup_small) ** fractions
    gpu = tuple(float(c / s) for c, s in zip(cpu, speedups, strict=True))
    return ServiceProfile(
        model=model,
        batch_items=grid,
        cpu_seconds=cpu,
        gpu_seconds=gpu,
        source={"machine": "synthetic", "gpu_device": "synthetic"},
    )


def with_measured_gpu(profile: ServiceProfile, gpu_profile: Path) -> ServiceProfile:
    """`profile` with the GPU pool's times from a `bench/gpu_profile.py` file (median seconds per
    batch, per model); ProfileError names the file when it cannot be read."""
    try:
        document = json.loads(gpu_profile.read_text(encoding="utf-8"))
        entry = document["models"][profile.model]
        return profile.with_gpu_times(
            tuple(int(b) for b in entry["batch_items"]),
            tuple(float(s) for s in entry["latency_s"]),
            str(document.get("device_name", gpu_profile.stem)),
        )
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise ProfileError(f"GPU profile {gpu_profile}: {error}") from error


def gpu_profile_path(name_or_path: str) -> Path | None:
    """The GPU latency profile file emulated pods get for `--gpu-profile`: a path, or a name
    shipped with the pod package (`nvidia-h200`), found on disk without importing the pod (the
    file's format is the contract, written by `bench/gpu_profile.py`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    found = importlib.util.find_spec("recsched_pod")
    for folder in (found.submodule_search_locations or []) if found else []:
        shipped = Path(folder) / "gpu_profiles" / f"{path.name}.json"
        if shipped.is_file():
            return shipped
    return None
