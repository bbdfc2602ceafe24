"""Measure a real GPU's per-batch latency for every model and write the profile file that the
emulated device reads (`recsched-pod --device emulated --gpu-profile FILE`).

Latency per batch = host-to-device copy of the inputs from pinned memory + forward + the scores
back to the host, as DeepRecInfra's accelerator profile counted data loading. The same run times
the host CPU with one thread, so the file also holds the measured GPU-over-CPU speedup beside the
paper's GTX 1080 Ti figures. Run on a GPU machine:
`python bench/gpu_profile.py --out profile.json [--scale 0.01] [--repeats 20]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "inference_pod" / "src"))

from recsched_pod.dataplane.gpu_emulation import PROFILE_BATCH_ITEMS, SPEEDUP_OVER_CPU
from recsched_pod.models import MODEL_NAMES, build_model, random_query


def time_gpu(
    model: torch.nn.Module, dense: torch.Tensor | None, sparse: torch.Tensor, repeats: int
) -> float:
    device = torch.device("cuda")
    dense_pinned = None if dense is None else dense.pin_memory()
    sparse_pinned = sparse.pin_memory()
    samples = []
    with torch.inference_mode():
        for round_index in range(repeats + 3):
            torch.cuda.synchronize()
            started = time.perf_counter()
            gpu_dense = None if dense_pinned is None else dense_pinned.to(device, non_blocking=True)
            scores = model(gpu_dense, sparse_pinned.to(device, non_blocking=True))
            scores.cpu()
            if round_index >= 3:  # the first rounds pay for kernel selection
                samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def time_cpu(
    model: torch.nn.Module, dense: torch.Tensor | None, sparse: torch.Tensor, repeats: int
) -> float:
    samples = []
    with torch.inference_mode():
        model(dense, sparse)
        for _ in range(repeats):
            started = time.perf_counter()
            model(dense, sparse)
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cpu-repeats", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_profile: no CUDA device here", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    document: dict[str, object] = {
        "device_name": torch.cuda.get_device_name(0),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "scale": args.scale,
        "what": "median seconds per batch: H2D copy (pinned) + forward + scores to host; "
        "cpu_latency_s is the host CPU with one thread",
        "models": {},
    }
    models: dict[str, object] = {}
    for name in MODEL_NAMES:
        cpu_model = build_model(name, scale=args.scale).eval()
        gpu_model = build_model(name, scale=args.scale).eval().to("cuda")
        gpu_s, cpu_s = [], []
        for items in PROFILE_BATCH_ITEMS:
            dense, sparse = random_query(
                cpu_model.spec, items, torch.Generator().manual_seed(items)
            )
            gpu_s.append(time_gpu(gpu_model, dense, sparse, args.repeats))
            cpu_s.append(time_cpu(cpu_model, dense, sparse, args.cpu_repeats))
        models[name] = {
            "batch_items": list(PROFILE_BATCH_ITEMS),
            "latency_s": gpu_s,
            "cpu_latency_s": cpu_s,
            "speedup_over_cpu": [c / g for c, g in zip(cpu_s, gpu_s, strict=True)],
            "paper_gtx1080ti_speedup": list(SPEEDUP_OVER_CPU[name]),
        }
        print(
            name,
            " ".join(
                f"{b}:{g * 1e3:.3f}ms/{c / g:.1f}x"
                for b, g, c in zip(PROFILE_BATCH_ITEMS, gpu_s, cpu_s, strict=True)
            ),
            flush=True,
        )
        del gpu_model
        torch.cuda.empty_cache()
    document["models"] = models
    args.out.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
