"""The one bench harness: ports, pod and router processes, request bodies, run headers.

Benchmarks stay a thin layer over the product's own tools, so this module only wraps them:

* processes are the pod CLI (`python -m recsched_pod`, i.e. `recsched-pod`) started as
  subprocesses on 127.0.0.1 and a free port, waited for on `/v2/health/ready` with a deadline
  (`running_pod`, `running_router`, or `start_process` + `wait_ready` + `stop`);
* load comes from `recsched_loadtest` (`LOADTEST` for its CLI; `loadtest_json` runs it and
  returns its `--json` summary; `push_config` is its config push), and what a pod saw from its
  own /metrics (`metric_totals`, `metric_deltas`);
* OIP bodies come from `recsched_loadtest.encoding`, the client side of the protocol, never a
  bench's own encoder (`binary_bodies`, `json_bodies`);
* a run header says where and when a figure was measured: machine, CPU model, load average,
  UTC date, command line, git commit (`run_header`), and generated reports keep their
  hand-written tail across reruns (`kept_tail`, `write_results`).

Scripts run as `python bench/NAME.py`, which puts bench/ on sys.path: `from harness import ...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from recsched_loadtest import oip_client
from recsched_loadtest.encoding import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    JSON_CONTENT_TYPE,
    encode_binary_request,
    encode_json_request,
    make_tensor_pool,
)
from recsched_loadtest.indices import IndexDistribution
from recsched_loadtest.signature import ModelSignature, parse_model_metadata

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
POD = (PYTHON, "-m", "recsched_pod")
"""The pod CLI (`recsched-pod`) in this interpreter, so a bench needs no installed entry point."""
LOADTEST = (PYTHON, "-m", "recsched_loadtest")
"""The load test CLI (`recsched-loadtest`) in this interpreter."""
READY_DEADLINE_S = 120.0
ADMIN_TOKEN = "bench"
"""The /admin bearer token of every pod and router the harness starts (written to a file)."""


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, release it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_process(
    args: Sequence[str], log: Path | None = None, launcher: Sequence[str] = POD
) -> subprocess.Popen[bytes]:
    """`recsched-pod ARGS` (or another `launcher`), output to `log` (discarded when None)."""
    sink: Any = log.open("wb") if log is not None else contextlib.nullcontext(subprocess.DEVNULL)
    with sink as out:  # the child keeps its own descriptor of the log
        return subprocess.Popen([*launcher, *args], stdout=out, stderr=subprocess.STDOUT)


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes] | None = None,
    deadline_s: float = READY_DEADLINE_S,
    log: Path | None = None,
) -> None:
    """Poll `url`/v2/health/ready until 200; raise when `process` exits or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as reply,
        ):
            if reply.status == 200:
                return
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{url}: process exited with {process.returncode}\n{tail}")
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {deadline_s:g} s")


def stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM, wait up to `grace_s`, then SIGKILL: only the process this harness started."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
    if process.poll() is None:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Running:
    """A started pod or router: its URL, port, process and log file."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    token: str = ADMIN_TOKEN


def pod_args(
    model: str,
    workdir: Path,
    *,
    port: int,
    workers: int = 1,
    batch: int = 64,
    scale: float = 0.01,
    threshold: int = 1025,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The pod CLI's arguments: a config document (generation 1) and an admin token in `workdir`."""
    config = workdir / f"{model}-{port}-config.json"
    knobs = {"batchSize": batch, "offloadThreshold": threshold, "workers": workers}
    config.write_text(json.dumps({"generation": 1, **knobs}))
    token = workdir / "admin-token"
    token.write_text(ADMIN_TOKEN + "\n")
    return [
        *("--model", model, "--scale", str(scale), "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", str(workers), "--config", str(config)),
        *("--admin-token-file", str(token), "--recmodel", "bench", "--log-level", "WARNING"),
        *extra_args,
    ]


@contextlib.contextmanager
def _running(
    make_args: Any, name: str, workdir: Path | None, launcher: Sequence[str]
) -> Iterator[Running]:
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        port = free_port()
        log = workdir / f"{name}-{port}.log"
        process = start_process(make_args(workdir, port=port), log, launcher)
        stack.callback(stop, process)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, log=log)
        yield Running(url, port, process, log)


@contextlib.contextmanager
def running_pod(
    model: str,
    *,
    workers: int = 1,
    batch: int = 64,
    scale: float = 0.01,
    threshold: int = 1025,
    extra_args: Sequence[str] = (),
    workdir: Path | None = None,
    launcher: Sequence[str] = POD,
) -> Iterator[Running]:
    """One inference pod, ready, for the `with` block; stopped after it."""
    make_args = functools.partial(
        pod_args,
        model,
        workers=workers,
        batch=batch,
        scale=scale,
        threshold=threshold,
        extra_args=extra_args,
    )
    with _running(make_args, f"pod-{model}", workdir, launcher) as pod:
        yield pod


@contextlib.contextmanager
def running_router(
    model: str,
    cpu_endpoints: Sequence[str],
    *,
    gpu_endpoints: Sequence[str] = (),
    scale: float = 0.01,
    threshold: int = 1025,
    extra_args: Sequence[str] = (),
    workdir: Path | None = None,
    launcher: Sequence[str] = POD,
) -> Iterator[Running]:
    """One router (`--role router`) in front of `host:port` endpoints, ready, for the block."""

    def make_args(directory: Path, port: int) -> list[str]:
        routes = ["--cpu-endpoints", ",".join(cpu_endpoints)]
        if gpu_endpoints:
            routes += ["--gpu-endpoints", ",".join(gpu_endpoints)]
        common = pod_args(
            model, directory, port=port, scale=scale, threshold=threshold, extra_args=extra_args
        )
        return ["--role", "router", *common, *routes]

    with _running(make_args, f"router-{model}", workdir, launcher) as router:
        yield router


def loadtest_json(args: Sequence[str], timeout_s: float | None = None) -> dict[str, Any]:
    """`recsched-loadtest ARGS --json --quiet`: its JSON summary.

    Raises when it printed nothing (bad arguments, unreachable endpoint); a run that printed its
    summary and exited 1 because it missed `--slo-ms` is returned as measured.
    """
    command = [*LOADTEST, *args, "--json", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0 and not done.stdout.strip():
        raise RuntimeError(f"{shlex.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def signature_of(url: str, model: str) -> ModelSignature:
    """The model's signature from a running pod's metadata, as the load test reads it."""
    with urllib.request.urlopen(f"{url}/v2/models/{model}", timeout=10) as reply:
        return parse_model_metadata(json.loads(reply.read()))


def offline_signature(model: str, scale: float = 0.01) -> ModelSignature:
    """The same signature without a server, from the pod package's model zoo (imports torch)."""
    from recsched_pod.models import model_spec

    spec = model_spec(model, scale=scale)
    return ModelSignature(
        name=model,
        dense_features=spec.dense_features,
        table_rows=tuple(spec.table_rows),
        lookups_per_table=spec.lookups_per_table,
        output_width=spec.output_width,
        max_query_items=1024,
    )


Body = tuple[bytes, dict[str, str]]
"""An infer request body and the headers it needs."""


def _queries(
    signature: ModelSignature, items: int, count: int, seed: int
) -> Iterator[tuple[np.ndarray[Any, Any] | None, np.ndarray[Any, Any]]]:
    pool = make_tensor_pool(
        np.random.default_rng(seed), signature, IndexDistribution(), items * count
    )
    for index in range(count):
        window = slice(index * items, (index + 1) * items)
        dense = pool.dense[window] if signature.dense_features else None
        yield dense, pool.sparse[window]


def binary_bodies(
    signature: ModelSignature, items: int, count: int = 1, seed: int = 0
) -> list[Body]:
    """`count` different binary-extension bodies of `items` items (the load test's encoder)."""
    bodies = []
    for dense, sparse in _queries(signature, items, count, seed):
        body, header_length = encode_binary_request(signature, dense, sparse)
        headers = {HEADER_LENGTH: str(header_length), "Content-Type": BINARY_CONTENT_TYPE}
        bodies.append((body, headers))
    return bodies


def json_bodies(signature: ModelSignature, items: int, count: int = 1, seed: int = 0) -> list[Body]:
    """`count` different JSON bodies of `items` items (the load test's encoder)."""
    return [
        (encode_json_request(signature, dense, sparse), {"Content-Type": JSON_CONTENT_TYPE})
        for dense, sparse in _queries(signature, items, count, seed)
    ]


def push_config(url: str, knobs: dict[str, Any], token: str = ADMIN_TOKEN) -> dict[str, Any]:
    """Push `knobs` (batchSize, offloadThreshold, workers) with the next generation, as the load
    test's sweep does (`recsched_loadtest.oip_client.push_config`); returns the served config."""
    return asyncio.run(oip_client.push_config(url, token, knobs))


def metric_totals(url: str, prefixes: Sequence[str]) -> dict[str, float]:
    """Samples of the endpoint's /metrics whose name starts with one of `prefixes`, summed over
    labels except a histogram's `le`: `{"name": value}` or `{"name_bucket{le=0.05}": value}`."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(tuple(prefixes)):
                le = sample.labels.get("le")
                key = sample.name if le is None else f"{sample.name}{{le={le}}}"
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def metric_deltas(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What each `metric_totals` sample grew by between two scrapes."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 0.01."""
    return [round(value, 2) for value in os.getloadavg()]


def git_commit(paths: Sequence[str] = ()) -> str:
    """HEAD's short hash, with ' + changes' when the tree (or `paths` in it) differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", *paths)
    return (git("rev-parse", "--short", "HEAD") or "unknown") + (" + changes" if dirty else "")


def run_header(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Where, when and how a bench ran: put it in the JSON, print it in the report.

    Call it at the start of a run and set `header["load_average_after"] = load_average()` at the
    end: a figure measured while something else ran is worth less, and this says so.
    """
    command = [Path(PYTHON).name, *(sys.argv if argv is None else argv)]
    with contextlib.suppress(ValueError):
        command[1] = str(Path(command[1]).resolve().relative_to(ROOT))
    return {
        "machine": {
            "node": platform.node(),
            "cpus": os.cpu_count(),
            "cpus_allowed": len(os.sched_getaffinity(0)),
            "cpu_model": cpu_model(),
            "python": platform.python_version(),
        },
        "load_average_before": load_average(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(command),
        "commit": git_commit(),
    }


def header_line(header: dict[str, Any]) -> str:
    """One markdown sentence of a run header, for the top of a generated report."""
    machine = header["machine"]
    after = header.get("load_average_after")
    load = f"load average {header['load_average_before'][0]}" + (
        f" before, {after[0]} after" if after else " at the start"
    )
    return (
        f"Command: `{header['command']}` at commit {header['commit']}, {header['date']}. "
        f"Machine: {machine['node']}, {machine['cpus']} CPUs ({machine['cpu_model']}), {load}."
    )


def kept_tail(report: Path, marker: str) -> str:
    """The hand-written part of a generated report, from `marker` to its end ("" if none), so
    that a rerun keeps it (update it by hand)."""
    previous = report.read_text(encoding="utf-8") if report.exists() else ""
    return previous[previous.index(marker) :] if marker in previous else ""


def write_results(
    out: Path, results: dict[str, Any], report: str, marker: str | None = None
) -> None:
    """The JSON to `out`, the report beside it as .md, printed. Generated reports hold tables;
    their reading belongs in docs/benchmarks.md. A report that still keeps a hand-written tail
    from `marker` on passes the marker (`kept_tail`)."""
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    path = out.with_suffix(".md")
    tail = kept_tail(path, marker) if marker else ""
    path.write_text(report + ("\n" + tail if tail else ""), encoding="utf-8")
    print(report)
