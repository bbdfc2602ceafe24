"""The emulated GPU device: GPU service times from a latency profile, on a machine without a GPU.

DeepRecInfra modelled its accelerator the same way: a query's GPU time is interpolated in
log(batch) between profiled batch sizes. The profile is either measured on a real GPU
(`bench/gpu_profile.py` writes it) or derived from this pod's own CPU times at warm-up divided by
the GTX 1080 Ti / Skylake speedups the paper's repo measured (facts file section 1.4).

`VirtualGpu` serves one batch at a time in arrival order, as one CUDA stream would, so queueing
on the emulated device behaves like queueing on a real one. Scores still come from the real model
on the CPU; when the host cannot keep up with the profile, the query completes when its scores are
ready and the lag is exported, so the emulation never hides that it fell behind.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROFILE_BATCH_ITEMS: tuple[int, ...] = (1, 4, 16, 64, 256, 1024)
SHIPPED_PROFILES = Path(__file__).parents[1] / "gpu_profiles"  # by bench/gpu_profile.py

# GPU-over-CPU speedup at batch 1/4/16/64/256/1024, read off the released repo's figure
# (experiments/speedup/png/model_speedup.png; facts file section 1.4).
SPEEDUP_OVER_CPU: dict[str, tuple[float, ...]] = {
    "wnd": (0.45, 0.6, 0.8, 1.6, 3.3, 4.6),
    "mtwnd": (0.42, 0.6, 0.75, 1.4, 2.7, 4.0),
    "rmc3": (0.7, 1.4, 1.8, 2.4, 3.0, 3.1),
    "ncf": (0.25, 0.3, 0.4, 0.95, 1.7, 2.9),
    "dien": (0.37, 0.43, 0.5, 0.8, 1.45, 2.0),
    "din": (0.25, 0.27, 0.4, 0.53, 0.97, 1.35),
    "rmc2": (0.45, 0.7, 1.0, 1.2, 1.2, 1.16),
    "rmc1": (0.38, 0.5, 0.8, 1.0, 1.1, 1.1),
}


class GpuProfileError(ValueError):
    """A GPU latency profile file is missing, malformed or for another model."""


@dataclass(frozen=True)
class GpuLatencyProfile:
    """Service time of one batch on the (emulated) GPU, by batch size in items."""

    model: str
    source: str
    batch_items: tuple[int, ...]
    latency_s: tuple[float, ...]

    def latency_for(self, items: int) -> float:
        """Log-space interpolation; beyond the largest profiled batch, time grows per item."""
        largest = self.batch_items[-1]
        if items > largest:
            return self.latency_s[-1] * items / largest
        return float(
            np.interp(math.log(items), [math.log(b) for b in self.batch_items], self.latency_s)
        )

    @classmethod
    def from_cpu_times(cls, model: str, cpu_latency_s: dict[int, float]) -> GpuLatencyProfile:
        """Measured CPU times divided by the paper's GPU speedups at the same batch sizes."""
        if model not in SPEEDUP_OVER_CPU:
            raise GpuProfileError(f"no GPU speedup table for model {model!r}")
        speedups = dict(zip(PROFILE_BATCH_ITEMS, SPEEDUP_OVER_CPU[model], strict=True))
        sizes = tuple(sorted(cpu_latency_s))
        return cls(
            model=model,
            source="emulated: this host's CPU times / GTX 1080 Ti speedups (DeepRecSys repo)",
            batch_items=sizes,
            latency_s=tuple(cpu_latency_s[size] / speedups[size] for size in sizes),
        )

    @classmethod
    def load(cls, path: Path, model: str) -> GpuLatencyProfile:
        """A profile file written by `bench/gpu_profile.py` on a real GPU; a bare name such as
        `nvidia-h200` means the profile shipped with the pod."""
        if not path.exists() and (SHIPPED_PROFILES / f"{path.name}.json").exists():
            path = SHIPPED_PROFILES / f"{path.name}.json"
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            entry = document["models"][model]
            profile = cls(
                model=model,
                source=f"measured on {document['device_name']}",
                batch_items=tuple(int(b) for b in entry["batch_items"]),
                latency_s=tuple(float(s) for s in entry["latency_s"]),
            )
        except (OSError, KeyError, TypeError, ValueError) as error:
            raise GpuProfileError(
                f"GPU profile {path} has no usable entry for {model}: {error}"
            ) from error
        if len(profile.batch_items) != len(profile.latency_s) or not profile.batch_items:
            raise GpuProfileError(f"GPU profile {path}: batch_items and latency_s differ in length")
        return profile


class VirtualGpu:
    """One device serving one batch at a time, first come first served."""

    def __init__(self) -> None:
        self._busy_until_s = 0.0
        self._lock = threading.Lock()

    def schedule(self, ready_s: float, service_s: float) -> tuple[float, float]:
        """Reserve the device for `service_s` from when it is free; returns (start, end)."""
        with self._lock:
            start_s = max(ready_s, self._busy_until_s)
            self._busy_until_s = start_s + service_s
            return start_s, self._busy_until_s
