"""Measure per-batch service-time profiles of the eight models for the queueing simulator.

For each model and each batch size b in 1, 2, 4, ..., 1024 this times one forward pass over b items
on one thread (`torch.set_num_threads(1)`, `torch.inference_mode()`), the way one pod worker runs
a request, and keeps the median of repeats over a few distinct random inputs. The GPU column is
emulated: CPU time divided by the GTX 1080 Ti speedup the DeepRecSys repo plots
(`research/deeprecsys-facts.md` section 1.4), interpolated linearly in log(b) as the repo's
accelerator engine does, and the file says so (`"device": "emulated-from-speedup-table"`).

Writes one JSON file per model into `operator/src/recsched_operator/profiles/` with the machine,
the date, torch's version and the load average while measuring (these machines are shared).

    .venv/bin/python bench/profile_models.py [--models rmc1 wnd] [--budget-s 1.0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from harness import cpu_model

from recsched_pod.dataplane.gpu_emulation import PROFILE_BATCH_ITEMS, SPEEDUP_OVER_CPU
from recsched_pod.models import MODEL_NAMES, build_model, random_query

BATCH_ITEMS = tuple(2**k for k in range(11))
SCALE = 0.01
OUT_DIR = Path(__file__).resolve().parents[1] / "operator/src/recsched_operator/profiles"


def speedup_at(model: str, items: int) -> float:
    """The repo's GPU-over-CPU speedup (`gpu_emulation.SPEEDUP_OVER_CPU`), log-interpolated."""
    return float(np.interp(np.log(items), np.log(PROFILE_BATCH_ITEMS), SPEEDUP_OVER_CPU[model]))


def time_forwards_s(model: torch.nn.Module, spec: Any, budget_s: float) -> list[float]:
    """Median seconds of one forward pass for each size in BATCH_ITEMS.

    Sizes are timed in interleaved passes (each pass runs every size for about 10 ms) rather than
    one after the other, so a burst of load from other processes on a shared machine spreads over
    all sizes instead of bending one point of the curve.
    """
    generator = torch.Generator().manual_seed(0)
    inputs = {b: [random_query(spec, b, generator) for _ in range(3)] for b in BATCH_ITEMS}
    samples: dict[int, list[float]] = {b: [] for b in BATCH_ITEMS}
    with torch.inference_mode():
        for b in BATCH_ITEMS:  # warm-up: allocator, caches, lazy init
            for dense, sparse in inputs[b]:
                model(dense, sparse)
        started = time.perf_counter()
        passes = 0
        while passes < 5 or (time.perf_counter() - started < budget_s and passes < 100):
            for b in BATCH_ITEMS:
                estimate = statistics.median(samples[b]) if samples[b] else 0.01
                for _ in range(max(1, min(20, round(0.01 / estimate)))):
                    dense, sparse = inputs[b][len(samples[b]) % 3]
                    begin = time.perf_counter()
                    model(dense, sparse)
                    samples[b].append(time.perf_counter() - begin)
            passes += 1
    return [statistics.median(samples[b]) for b in BATCH_ITEMS]


def profile_model(name: str, budget_s: float) -> dict[str, object]:
    load_before = os.getloadavg()[0]
    model = build_model(name, scale=SCALE, seed=0)
    model.eval()
    cpu_s = time_forwards_s(model, model.spec, budget_s)
    speedups = [speedup_at(name, items) for items in BATCH_ITEMS]
    return {
        "model": name,
        "scale": SCALE,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}: {cpu_model()}, {os.cpu_count()} cores (shared)",
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "method": "median forward time; sizes interleaved in >=5 passes of ~10 ms each, "
        "3 distinct random inputs per size, warmed up; torch.inference_mode, one thread",
        "cpu": {"batch_items": list(BATCH_ITEMS), "seconds": cpu_s},
        "gpu": {
            "device": "emulated-from-speedup-table",
            "note": "CPU seconds / GTX 1080 Ti speedup over Skylake (facts file section 1.4), "
            "interpolated in log(batch)",
            "batch_items": list(BATCH_ITEMS),
            "speedup": speedups,
            "seconds": [c / s for c, s in zip(cpu_s, speedups, strict=True)],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--budget-s", type=float, default=10.0, help="timing budget per model")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        started = time.perf_counter()
        profile = profile_model(name, args.budget_s)
        path = args.out_dir / f"{name}.json"
        path.write_text(json.dumps(profile, indent=1) + "\n")
        cpu = profile["cpu"]["seconds"]  # type: ignore[index]
        print(
            f"{name}: b=1 {cpu[0] * 1e3:.3f} ms, b=1024 {cpu[-1] * 1e3:.1f} ms "
            f"({time.perf_counter() - started:.0f} s) -> {path}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
