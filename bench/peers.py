"""RecSched beside a general-purpose model server, MLServer 1.7.1 (issue 13, section 3).

Both serve the same model (RMC1, scale 0.01, seed 0: the pod's own TorchScript trace, exported
with torch.jit.save and loaded by bench/peer_mlserver/runtime.py), on the same 2 cores, driven by
the same `recsched-loadtest` workload (production size mix, JSON, the same seed per round).
This script only starts servers and calls the load test's CLI; the figures are its output.

    .venv/bin/python bench/peers.py install   # MLServer's own virtualenv under bench/.scratch
    .venv/bin/python bench/peers.py check     # same scores from both servers, or exit 1
    .venv/bin/python bench/peers.py sweep     # MLServer's settings: capacity at p95 <= 100 ms
    .venv/bin/python bench/peers.py measure   # interleaved rounds -> docs/benchmarks/peers.md
    .venv/bin/python bench/peers.py all       # the four, in order (what `make reproduce` runs)
    .venv/bin/python bench/peers.py measure --servers recsched   # one server: its own section

`measure` runs MLServer with the sweep's best settings (bench/.scratch/peers/sweep.json, else the
defaults below) and RecSched with one CPU pod, 2 workers pinned, B = `--batch`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from json_decode import replace_section
from peer_scores import binary_probe, check_same_scores, single_query_ms
from peer_servers import (
    SCRATCH,
    MLServerSettings,
    export_torchscript,
    install_mlserver,
    running_mlserver,
    versions,
)
from peers_report import render, render_one_server

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def running_pod(
    model: str, workers: int, batch: int, workdir: Path, extra_args: tuple[str, ...] = ()
) -> Iterator[str]:
    with harness.running_pod(
        model, workers=workers, batch=batch, extra_args=extra_args, workdir=workdir
    ) as pod:
        yield pod.url


def run_header(args: argparse.Namespace) -> dict[str, Any]:
    """The header `peers_report` renders: machine, date and this run's arguments."""
    header = harness.run_header()
    return {
        "machine": {
            "cpus": header["machine"]["cpus"],
            "processor": harness.cpu_model(),
            "load_average": harness.load_average()[0],
        },
        "date": header["date"],
        "args": {k: v for k, v in vars(args).items() if k != "out"},
    }


def write_results(out: Path, results: dict[str, Any], report: str) -> None:
    """JSON and report; the report keeps its hand-written "## Reading" tail."""
    harness.write_results(out, results, report, marker="## Reading")


OUT = ROOT / "docs" / "benchmarks" / "peers.json"
WORK = SCRATCH / "peers"
SWEEP_OUT = WORK / "sweep.json"
LOADTEST = [sys.executable, "-m", "recsched_loadtest"]
MODEL, SCALE, SEED = "rmc1", 0.01, 0
SWEEP: tuple[MLServerSettings, ...] = (
    MLServerSettings(parallel_workers=1, torch_threads=2),  # MLServer's default: a pool of one
    MLServerSettings(parallel_workers=2, torch_threads=1),  # one worker per core (Seldon's advice)
    MLServerSettings(parallel_workers=2, torch_threads=1, max_batch_size=4, max_batch_time_s=0.005),
    MLServerSettings(parallel_workers=2, torch_threads=1, max_batch_size=8, max_batch_time_s=0.02),
)
DEFAULT_BEST = SWEEP[1]
MAX_SEARCH_S = 150
"""A search cut there reports the highest rate that passed (marked unconverged): at 1-2 QPS each
trial of 100 queries lasts about a minute."""
Server = Callable[[], contextlib.AbstractContextManager[str]]


def torchscript_file() -> Path:
    path = WORK / f"{MODEL}-scale{SCALE}-seed{SEED}.pt"
    if not path.exists():
        export_torchscript(MODEL, SCALE, SEED, path)
    return path


@functools.cache
def pod_metadata(batch: int) -> dict[str, Any]:
    """The pod's own model metadata, which MLServer then publishes unchanged."""
    with tempfile.TemporaryDirectory() as tmp, running_pod(MODEL, 2, batch, Path(tmp)) as url:
        document: dict[str, Any] = httpx.get(f"{url}/v2/models/{MODEL}", timeout=10).json()
    return document


@contextlib.contextmanager
def recsched(batch: int) -> Iterator[str]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_pod(MODEL, 2, batch, Path(tmp), ("--pin-workers", "auto")) as url,
    ):
        yield url


def mlserver(settings: MLServerSettings, metadata: dict[str, Any]) -> Server:
    def start() -> contextlib.AbstractContextManager[str]:
        folder = Path(tempfile.mkdtemp(prefix="mlserver-", dir=WORK))
        return running_mlserver(settings, MODEL, torchscript_file(), metadata, folder)

    return start


def loadtest(command: str, url: str, seed: int, *args: str) -> dict[str, Any]:
    """One `recsched-loadtest` call on the production mix over JSON; its --json document."""
    common = ["--url", url, "--model", MODEL, "--sizes", "production", "--protocol", "json"]
    argv = [command, *common, "--seed", str(seed), "--json", "--quiet", *args]
    reply = subprocess.run([*LOADTEST, *argv], capture_output=True, text=True)
    if reply.returncode not in (0, 1):  # 1: a run missed its SLO or a search did not converge
        raise RuntimeError(f"recsched-loadtest {command} failed: {reply.stderr[-2000:]}")
    document: dict[str, Any] = json.loads(reply.stdout)
    document["command"] = shlex.join(["recsched-loadtest", *argv]).replace(url, "$URL")
    return document


def capacity(
    url: str, seed: int, target_ms: float, start_qps: float, trial_s: float
) -> dict[str, Any]:
    return loadtest(
        "capacity", url, seed, "--target-ms", str(target_ms), "--start-qps", str(start_qps),
        "--trial-s", str(trial_s), "--warmup-s", "1", "--tolerance", "0.1", "--max-trials", "2",
        "--min-trial-queries", "100", "--max-search-s", str(MAX_SEARCH_S),
    )  # fmt: skip


def fixed_load(url: str, seed: int, rate_qps: float, duration_s: float) -> dict[str, Any]:
    return loadtest(
        "run", url, seed, "--rate", str(rate_qps), "--duration-s", str(duration_s),
        "--warmup-s", "3",
    )  # fmt: skip


def capacity_above_floor(
    url: str, seed: int, target_ms: float, start_qps: float, floor: dict[str, Any], trial_s: float
) -> dict[str, Any]:
    """The capacity search, unless the floor run already missed the target: a search from there
    would only halve the rate into minutes-long trials (a server whose large queries alone take
    longer than the target meets it at no load), so that miss is the answer: capacity 0."""
    if floor["latency"]["p95_ms"] <= target_ms:
        return capacity(url, seed, target_ms, start_qps, trial_s)
    return {
        "capacity_qps": 0.0,
        "converged": True,
        "missed_at_qps": floor["offered_qps"],
        "p95_ms_there": floor["latency"]["p95_ms"],
        "command": floor["command"],
    }


def warm_up(url: str) -> None:
    loadtest("run", url, 99, "--rate", "5", "--duration-s", "5", "--warmup-s", "0")


def command_check(args: argparse.Namespace) -> dict[str, Any]:
    metadata = pod_metadata(args.batch)
    with recsched(args.batch) as pod_url, mlserver(best_settings(), metadata)() as peer_url:
        scores = check_same_scores(pod_url, peer_url, MODEL, metadata, tolerance=1e-5)
        binary = binary_probe(peer_url, MODEL, metadata)
        single = {
            "recsched": single_query_ms(pod_url, MODEL, metadata),
            "mlserver": single_query_ms(peer_url, MODEL, metadata),
        }
    found = {"scores": scores, "binary": binary, "single_query_ms": single}
    print(json.dumps(found, indent=1))
    return found


def command_sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each candidate's p95 at the floor rate and at the common load; best = lowest p95 at the
    common load (when none meets 100 ms at the floor rate, capacity cannot rank them)."""
    metadata = pod_metadata(args.batch)
    results = []
    for settings in SWEEP:
        with mlserver(settings, metadata)() as url:
            warm_up(url)
            floor = fixed_load(url, args.seed, args.floor_qps, args.sweep_s)
            common = fixed_load(url, args.seed, args.common_qps, args.sweep_s)
        row = {"settings": settings.__dict__, "label": settings.label, "floor": floor,
               "common_load": common}  # fmt: skip
        print(f"{settings.label}: {_p95(floor)} ms at {args.floor_qps:g} QPS, "
              f"{_p95(common)} ms at {args.common_qps:g} QPS", flush=True)  # fmt: skip
        results.append(row)
    header = run_header(args)
    document = {"date": header["date"], "load_average_start": header["machine"]["load_average"],
                "load_average_end": round(os.getloadavg()[0], 2), "rows": results,
                "runs": {"floor_qps": args.floor_qps, "floor_s": args.sweep_s,
                         "common_qps": args.common_qps, "common_s": args.sweep_s}}  # fmt: skip
    SWEEP_OUT.parent.mkdir(parents=True, exist_ok=True)
    SWEEP_OUT.write_text(json.dumps(document, indent=1))
    return results


def _p95(run: dict[str, Any]) -> str:
    return f"{run['latency']['p95_ms']:.0f}"


def best_settings() -> MLServerSettings:
    if not SWEEP_OUT.exists():
        return DEFAULT_BEST
    rows = json.loads(SWEEP_OUT.read_text())["rows"]
    best = min(rows, key=lambda row: row["common_load"]["latency"]["p95_ms"])
    return MLServerSettings(**best["settings"])


def one_server(url: str, seed: int, args: argparse.Namespace, start_qps: float) -> dict[str, Any]:
    warm_up(url)
    common = fixed_load(url, seed, args.common_qps, args.common_s)
    floor = fixed_load(url, seed, args.floor_qps, args.floor_s)
    found: dict[str, Any] = {"common_load": common, "floor": floor}
    if 100 in args.targets_ms:
        found["capacity_100ms"] = capacity_above_floor(
            url, seed, 100.0, start_qps, floor, args.trial_s
        )
    if 50 in args.targets_ms:
        # From the common load: a search from the 100 ms start halves through minute-long trials.
        found["capacity_50ms"] = capacity_above_floor(
            url, seed, 50.0, args.common_qps, floor, args.trial_s
        )
    found["load_average_after"] = round(os.getloadavg()[0], 2)
    return found


def command_measure(args: argparse.Namespace, check: dict[str, Any] | None) -> dict[str, Any]:
    peer = best_settings()
    servers: dict[str, tuple[Server, float]] = {}
    if args.servers in ("recsched", "both"):
        servers["recsched"] = (lambda: recsched(args.batch), args.recsched_start_qps)
    if args.servers in ("mlserver", "both"):
        servers["mlserver"] = (mlserver(peer, pod_metadata(args.batch)), args.mlserver_start_qps)
    rounds: list[dict[str, Any]] = []
    load_start = " ".join(f"{value:.2f}" for value in os.getloadavg())
    started = time.monotonic()
    for round_index in range(args.rounds):
        seed = args.seed + round_index
        this_round: dict[str, Any] = {"seed": seed}
        for name, (server, start_qps) in servers.items():
            with server() as url:
                this_round[name] = one_server(url, seed, args, start_qps)
            print(name, round_index, _brief(this_round[name]), flush=True)
        rounds.append(this_round)
    results: dict[str, Any] = {
        **run_header(args),
        "elapsed_s": round(time.monotonic() - started),
        "load_average_start": load_start,
        "commit": _commit(),
        "uncommitted_product_files": _uncommitted(),
        "versions": versions(),
        "recsched": {"workers": 2, "batch": args.batch, "pin_workers": "auto"},
        "mlserver": {"settings": peer.__dict__, "label": peer.label},
        "sweep": json.loads(SWEEP_OUT.read_text()) if SWEEP_OUT.exists() else None,
        "check": check,
        "rounds": rounds,
    }
    if args.servers == "both":
        write_results(args.out, results, render(results))
    else:  # one server: its own JSON, and a section of peers.md beside the comparison
        out, report = args.out, args.out.with_suffix(".md")  # --out elsewhere: a trial run
        if args.out == OUT:
            out = OUT.with_name(f"peers_{args.servers}_only.json")
        out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        section = render_one_server(results, out.name)
        replace_section(report, section)
        print(section)
    return results


def _brief(result: dict[str, Any]) -> str:
    caps = [
        f"cap{key[9:-2]} {result[key]['capacity_qps']:.1f} "
        for key in ("capacity_100ms", "capacity_50ms")
        if key in result
    ]
    return "".join(caps) + f"p95@common {result['common_load']['latency'].get('p95_ms')}"


def _uncommitted() -> list[str]:
    """Product files that differ from the commit (a shared working tree: the pod runs them)."""
    paths = ["inference_pod", "loadtest", "pyproject.toml"]
    reply = subprocess.run(
        ["git", "status", "--porcelain", "--", *paths], capture_output=True, text=True, cwd=ROOT
    )
    return [line[3:] for line in reply.stdout.splitlines()]


def _commit() -> str:
    reply = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    )
    return reply.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("step", choices=("install", "check", "sweep", "measure", "all"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--batch", type=int, default=128, help="RecSched's B (best median, batch_landscape.md)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trial-s", type=float, default=4.0, help="seconds per capacity trial")
    parser.add_argument("--common-qps", type=float, default=4.0, help="the common offered load")
    parser.add_argument("--common-s", type=float, default=30.0)
    parser.add_argument("--floor-qps", type=float, default=1.0, help="the lowest rate searched")
    parser.add_argument("--floor-s", type=float, default=20.0)
    parser.add_argument(
        "--sweep-s",
        type=float,
        default=20.0,
        help="sweep: seconds of each candidate's floor and common-load runs (it only ranks them)",
    )
    parser.add_argument("--recsched-start-qps", type=float, default=20.0)
    parser.add_argument("--mlserver-start-qps", type=float, default=4.0)
    parser.add_argument(
        "--servers",
        choices=("recsched", "mlserver", "both"),
        default="both",
        help="measure: the servers to run; one alone writes peers_<server>_only.json and its "
        "own section of peers.md, keeping the comparison",
    )
    parser.add_argument(
        "--targets-ms",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[100, 50],
        help="measure: the capacity searches to run, of 100,50 (the comparison needs both)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.servers == "both" and sorted(args.targets_ms) != [50, 100]:
        parser.error("--servers both needs --targets-ms 100,50")
    if args.servers != "recsched" or args.step != "measure":
        install_mlserver()
    if args.step == "install":
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    wants_check = args.step in ("check", "all") or (
        args.step == "measure" and args.servers == "both"
    )
    check = command_check(args) if wants_check else None
    if args.step in ("sweep", "all"):
        command_sweep(args)
    if args.step in ("measure", "all"):
        command_measure(args, check)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
