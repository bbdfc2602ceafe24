"""The emulated GPU: profile interpolation, profiles derived from CPU times or loaded from a file
measured on a real GPU, and a virtual device that serves one batch at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsched_pod.dataplane.gpu_emulation import (
    PROFILE_BATCH_ITEMS,
    SPEEDUP_OVER_CPU,
    GpuLatencyProfile,
    GpuProfileError,
    VirtualGpu,
)
from recsched_pod.models import MODEL_NAMES

PROFILE = GpuLatencyProfile("wnd", "test", (1, 16, 256), (0.001, 0.002, 0.010))


def test_latency_is_exact_at_profiled_sizes_and_log_interpolated_between() -> None:
    assert PROFILE.latency_for(16) == pytest.approx(0.002)
    assert PROFILE.latency_for(4) == pytest.approx(0.0015)  # halfway in log(4) between 1 and 16
    assert PROFILE.latency_for(64) == pytest.approx(0.006)


def test_latency_beyond_the_largest_profiled_batch_grows_per_item() -> None:
    assert PROFILE.latency_for(512) == pytest.approx(0.020)


def test_profile_from_cpu_times_divides_by_the_paper_speedups() -> None:
    cpu_times = {size: 0.01 for size in PROFILE_BATCH_ITEMS}
    profile = GpuLatencyProfile.from_cpu_times("wnd", cpu_times)
    assert profile.latency_s == tuple(0.01 / s for s in SPEEDUP_OVER_CPU["wnd"])
    assert "emulated" in profile.source


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shipped_h200_profile_covers_every_model(name: str) -> None:
    profile = GpuLatencyProfile.load(Path("nvidia-h200"), name)
    assert profile.source == "measured on NVIDIA H200"
    assert profile.batch_items == PROFILE_BATCH_ITEMS
    assert all(0 < latency < 0.1 for latency in profile.latency_s)


def test_unusable_profile_file_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"device_name": "x", "models": {}}), encoding="utf-8")
    with pytest.raises(GpuProfileError, match="no usable entry for rmc1"):
        GpuLatencyProfile.load(path, "rmc1")


def test_virtual_gpu_serves_batches_one_after_another() -> None:
    gpu = VirtualGpu()
    assert gpu.schedule(ready_s=1.0, service_s=0.5) == (1.0, 1.5)
    assert gpu.schedule(ready_s=1.1, service_s=0.5) == (1.5, 2.0)  # waits for the first
    assert gpu.schedule(ready_s=3.0, service_s=0.1) == (3.0, 3.1)  # idle device starts at once
