"""The two servers bench/peers.py compares, each started on loopback and stopped by its caller.

RecSched: one CPU pod (`python -m recsched_pod`) through `harness.running_pod`, the
launcher the other benches use. MLServer 1.7.1: installed by `install_mlserver` into its own
virtualenv under bench/.scratch (never the project's environment), serving the pod's own
TorchScript trace (`export_torchscript`, run in the project's environment) through the runtime in
bench/peer_mlserver/runtime.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recsched_pod.dataplane.serving_graph import TRACE_ITEMS, serving_graph
from recsched_pod.models import build_model, random_query

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import free_port

BENCH = Path(__file__).resolve().parent
SCRATCH = BENCH / ".scratch"
VENV = SCRATCH / "mlserver-venv"
RUNTIME_DIR = BENCH / "peer_mlserver"
PINS = ("torch==2.13.0", "mlserver==1.7.1", "uvloop==0.21.0")
"""uvloop 0.23.0 (what mlserver 1.7.1 pulls in) kills its parallel workers at start: 'There is no
current event loop in thread MainThread'. torch pinned: the CPU wheel on disk, not a CUDA build."""


def install_mlserver() -> Path:
    """Create the MLServer virtualenv with the pinned versions, unless it already has them."""
    stamp = VENV / ".recsched-pins"
    if stamp.exists() and stamp.read_text().split() == list(PINS):
        return VENV
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *PINS], check=True)
    stamp.write_text("\n".join(PINS) + "\n")
    return VENV


def export_torchscript(model: str, scale: float, seed: int, path: Path) -> bool:
    """Trace `model` as the pod does (serving_graph) and save it; returns whether it has dense.

    The pod traces on a seeded query of TRACE_ITEMS items and serves the trace only once it
    matched eager on other sizes; the same steps here give the same graph over the same weights.
    """
    built = build_model(model, scale=scale, seed=seed)
    if serving_graph(built, torch.device("cpu"), "traced", seed).mode != "traced":
        raise RuntimeError(f"the pod would serve {model} eager: nothing to export")
    dense, sparse = random_query(built.spec, TRACE_ITEMS, torch.Generator().manual_seed(seed))
    if dense is None:
        raise RuntimeError(f"{model} has no dense input: only dense models are exported here")
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.filterwarnings("ignore")
        traced = torch.jit.trace(built, (dense, sparse), check_trace=False)  # type: ignore[no-untyped-call]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(traced, str(path))  # type: ignore[no-untyped-call]
    return True


@dataclass(frozen=True)
class MLServerSettings:
    """The knobs the sweep varies; everything else is fixed in `_settings_files`."""

    parallel_workers: int  # 0: inference in the server's own process
    torch_threads: int
    max_batch_size: int = 0  # 0 or 1: adaptive batching off
    max_batch_time_s: float = 0.0

    @property
    def label(self) -> str:
        batching = (
            f"batch {self.max_batch_size}/{self.max_batch_time_s * 1000:g} ms"
            if self.max_batch_size > 1
            else "no batching"
        )
        return f"workers {self.parallel_workers}, threads {self.torch_threads}, {batching}"


def _settings_files(
    folder: Path,
    settings: MLServerSettings,
    model: str,
    torchscript: Path,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    server = {
        "debug": False,  # no per-request access log (the pod runs at WARNING)
        "gzip_enabled": False,  # compressing on loopback only costs CPU
        "host": "127.0.0.1",
        "http_port": free_port(),
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": settings.parallel_workers,
        "parallel_workers_timeout": 30,
        "metrics_dir": str(folder / ".metrics"),
        "environments_dir": str(folder / ".envs"),
    }
    model_settings = {
        "name": model,
        "implementation": "runtime.TorchScriptRecModel",
        "platform": metadata.get("platform", "pytorch"),
        "inputs": metadata["inputs"],
        "outputs": metadata["outputs"],
        "max_batch_size": settings.max_batch_size,
        "max_batch_time": settings.max_batch_time_s,
        "parameters": {
            "uri": str(torchscript),
            "extra": {
                "torch_threads": settings.torch_threads,
                "metadata_parameters": metadata.get("parameters", {}),
            },
        },
    }
    (folder / model).mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(server, indent=1))
    (folder / model / "model-settings.json").write_text(json.dumps(model_settings, indent=1))
    return {"settings.json": server, "model-settings.json": model_settings}


def _ready(url: str, model: str) -> bool:
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(f"{url}/v2/models/{model}/ready", timeout=1) as reply,
    ):
        return bool(reply.status == 200)
    return False


@contextlib.contextmanager
def running_mlserver(
    settings: MLServerSettings,
    model: str,
    torchscript: Path,
    metadata: dict[str, Any],
    folder: Path,
    ready_timeout_s: float = 120.0,
) -> Iterator[str]:
    """MLServer serving `torchscript` as `model` on free loopback ports; yields its base URL."""
    files = _settings_files(folder, settings, model, torchscript, metadata)
    url = f"http://127.0.0.1:{files['settings.json']['http_port']}"
    env = {**os.environ, "PYTHONPATH": str(RUNTIME_DIR)}
    log_path = folder / "mlserver.log"
    with log_path.open("wb") as log:
        # Its own session, so stopping it reaches the inference-pool processes it forked.
        process = subprocess.Popen(
            [str(VENV / "bin" / "mlserver"), "start", str(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + ready_timeout_s
        while not _ready(url, model):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlserver did not become ready: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        started = _group_size(process.pid)
        yield url
        if _group_size(process.pid) < started:  # MLServer's pool lost a worker under load
            raise RuntimeError(f"mlserver lost a worker process during the run: see {log_path}")
    finally:
        _stop_group(process)


def _group_size(group: int) -> int:
    """Live processes in process group `group` (the server, its pool, its resource tracker)."""
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            count += fields[0] != "Z" and int(fields[2]) == group
    return count


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server (it stops its pool), then SIGKILL to whatever of its group is left."""
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def versions() -> dict[str, str]:
    """Versions of what each side runs (MLServer's read from its own virtualenv)."""
    probe = (
        "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
        "('mlserver', 'torch', 'uvloop', 'fastapi', 'uvicorn', 'orjson')}))"
    )
    peer = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", probe], check=True, capture_output=True, text=True
    )
    return {
        "python": sys.version.split()[0],
        "torch (recsched)": torch.__version__,
        **{f"{name} (mlserver venv)": v for name, v in json.loads(peer.stdout).items()},
    }
