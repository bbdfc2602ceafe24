"""Markdown for docs/benchmarks/peers.md from bench/peers.py's results (pure).

Per server: each round's figure, the median and the range, since one capacity search on this
shared machine can differ severalfold from the next on the same server (issue 13).
"""

from __future__ import annotations

import statistics
from typing import Any

SERVERS = {"recsched": "RecSched pod", "mlserver": "MLServer 1.7.1"}
RATIO_FLOOR = 3.0
TARGET_FLOOR_MS = 50.0


def _unconverged(results: dict[str, Any], server: str, key: str) -> list[bool]:
    return [not r[server][key].get("converged", True) for r in results["rounds"]]


def _values(results: dict[str, Any], server: str, key: str) -> list[float]:
    return [float(r[server][key]["capacity_qps"]) for r in results["rounds"]]


def _latency(results: dict[str, Any], server: str, quantile: str) -> list[float]:
    return [float(r[server]["common_load"]["latency"][quantile]) for r in results["rounds"]]


def _spread(values: list[float], digits: int = 1) -> tuple[str, str, str]:
    each = ", ".join(f"{v:.{digits}f}" for v in values)
    return (
        each,
        f"{statistics.median(values):.{digits}f}",
        f"{min(values):.{digits}f}-{max(values):.{digits}f}",
    )


def floors(results: dict[str, Any]) -> dict[str, Any]:
    """The two floors of issue 13 section 3, on the medians over rounds."""
    ours = statistics.median(_values(results, "recsched", "capacity_100ms"))
    theirs = statistics.median(_values(results, "mlserver", "capacity_100ms"))
    tight = statistics.median(_values(results, "recsched", "capacity_50ms"))
    common_p95 = statistics.median(_latency(results, "recsched", "p95_ms"))
    ratio = ours / theirs if theirs > 0 else float("inf")
    return {
        "capacity_ratio_100ms": ratio,
        "capacity_ratio_met": ratio >= RATIO_FLOOR,
        "recsched_capacity_50ms_qps": tight,
        "recsched_common_load_p95_ms": common_p95,
        # The common-load run is a passing trial too, should a search have stopped without one.
        "recsched_meets_50ms": tight > 0 or common_p95 <= TARGET_FLOOR_MS,
    }


def _load_range(results: dict[str, Any]) -> str:
    loads = [r[s]["load_average_after"] for r in results["rounds"] for s in _present(results)]
    return f"{min(loads):g}-{max(loads):g}"


def _header(results: dict[str, Any]) -> list[str]:
    machine, args = results["machine"], results["args"]
    peer = results["mlserver"]
    return [
        "# RecSched beside a general-purpose model server (MLServer)",
        "",
        f"Command: `.venv/bin/python bench/peers.py measure --rounds {args['rounds']} --batch "
        f"{args['batch']} --common-qps {args['common_qps']:g} --common-s {args['common_s']:g} "
        f"--floor-s {args['floor_s']:g} --trial-s {args['trial_s']:g}` "
        f"(`bench/peers.py all` also installs, checks and sweeps). Commit {results['commit']}. "
        f"Machine: {machine['cpus']} CPUs ({machine['processor']}), results written "
        f"{results['date']} after {results['elapsed_s']} s, load average then "
        f"{machine['load_average']}, after each server's turn {_load_range(results)}"
        + (
            f" (product files differing from that commit in the shared tree, and so served: "
            f"{', '.join(results['uncommitted_product_files'])})"
            if results.get("uncommitted_product_files")
            else ""
        )
        + ". "
        f"Both servers on the same cores, one at a time, interleaved (RecSched, MLServer, ...) "
        f"for {args['rounds']} rounds; round i uses seed {args['seed']}+i for both.",
        "",
        "* **Model:** RMC1, scale 0.01, weight seed 0, the TorchScript trace the pod serves "
        "(MLServer loads it, saved by `torch.jit.save`, through `bench/peer_mlserver/runtime.py`).",
        "* **Workload:** `recsched-loadtest`, production size mix (lognormal 5.1, 0.8, clipped "
        "1..1024), Poisson arrivals, JSON protocol.",
        f"* **RecSched:** one CPU pod, {results['recsched']['workers']} workers pinned "
        f"(`--pin-workers auto`), B = {results['recsched']['batch']}.",
        f"* **MLServer:** {peer['label']} (the best of the sweep below), `debug` off, gzip off.",
        "* **Versions:** "
        + ", ".join(f"{name} {version}" for name, version in results["versions"].items())
        + ".",
        "",
    ]


def _check_lines(check: dict[str, Any] | None) -> list[str]:
    if not check:
        return []
    worst = max(check["scores"]["max_abs_difference_by_items"].values())
    sizes = ", ".join(check["scores"]["max_abs_difference_by_items"])
    binary = check["binary"]
    return [
        f"**Same scores:** the same JSON queries of {sizes} items to both servers: largest "
        f"absolute difference {worst:.3g} (the check fails the run above "
        f"{check['scores']['tolerance']:g}). **Binary protocol:** MLServer's REST server does not "
        "implement the binary tensor extension (`Inference-Header-Content-Length`; "
        "SeldonIO/MLServer issue 324, open; its raw tensors exist only over gRPC, which "
        f"recsched-loadtest does not speak): one binary query got HTTP {binary['status']}, so "
        "every figure here is JSON.",
        "",
        *_single_query_lines(check.get("single_query_ms")),
    ]


def _single_query_lines(single: dict[str, dict[str, float]] | None) -> list[str]:
    if not single:
        return []
    sizes = list(single["recsched"])
    lines = [
        "**One query at a time** (JSON, median of 6, ms): the floor under any p95; the "
        "production mix's 95th-percentile query has about 611 items.",
        "",
        "| server | " + " | ".join(f"{items} items" for items in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for server, name in SERVERS.items():
        cells = " | ".join(f"{single[server][items]:.1f}" for items in sizes)
        lines.append(f"| {name} | {cells} |")
    return [*lines, ""]


def _present(results: dict[str, Any]) -> dict[str, str]:
    """The servers this run measured (a `--servers` run has one)."""
    return {key: name for key, name in SERVERS.items() if key in results["rounds"][0]}


def _capacity_table(results: dict[str, Any]) -> list[str]:
    floor_qps = results["args"]["floor_qps"]
    lines = [
        "## Latency-bounded capacity (QPS), JSON",
        "",
        f"Each round first runs {floor_qps:g} QPS for {results['args']['floor_s']:g} s; a target "
        "missed there counts as capacity 0 (no search below it), with that run's p95 in "
        "brackets. * a search that stopped unconverged (time cap or unstable verdicts): the "
        "highest rate that passed.",
        "",
    ]
    run = [
        key
        for key in ("capacity_100ms", "capacity_50ms")
        if key in results["rounds"][0][next(iter(_present(results)))]
    ]
    lines += [
        "| server | "
        + " | ".join(f"p95 <= {key[9:-2]} ms per round | median | range" for key in run)
        + " |",
        "|---|" + "---|---|---|" * len(run),
    ]
    for server, name in _present(results).items():
        cells = []
        for key in run:
            each, median, span = _spread(_values(results, server, key))
            missed = [r[server][key].get("p95_ms_there") for r in results["rounds"]]
            cut = _unconverged(results, server, key)
            each = ", ".join(
                f"{r[server][key]['capacity_qps']:.1f}"
                + (f" ({m:.0f} ms)" if m is not None else "")
                + ("*" if short else "")
                for r, m, short in zip(results["rounds"], missed, cut, strict=True)
            )
            cells += [each, median, span]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return [*lines, ""]


def _latency_table(results: dict[str, Any]) -> list[str]:
    args = results["args"]
    lines = [
        f"## At a common offered load: {args['common_qps']:g} QPS for {args['common_s']:g} s",
        "",
        "Client latency in ms, median over rounds (range).",
        "",
        "| server | p50 | p95 | p99 | errors per round |",
        "|---|---|---|---|---|",
    ]
    for server, name in _present(results).items():
        cells = []
        for quantile in ("p50_ms", "p95_ms", "p99_ms"):
            _, median, span = _spread(_latency(results, server, quantile))
            cells.append(f"{median} ({span})")
        errors = ", ".join(
            str(sum(r[server]["common_load"]["errors"].values())) for r in results["rounds"]
        )
        lines.append(f"| {name} | {' | '.join(cells)} | {errors} |")
    return [*lines, ""]


def _floor_lines(results: dict[str, Any]) -> list[str]:
    found = floors(results)
    ratio = found["capacity_ratio_100ms"]
    return [
        "## Floors",
        "",
        f"* RecSched's JSON capacity at p95 <= 100 ms is {ratio:.2f}x MLServer's best "
        f"(medians; floor >= {RATIO_FLOOR:g}x): "
        + ("**met**." if found["capacity_ratio_met"] else "**not met**."),
        f"* RecSched at p95 <= {TARGET_FLOOR_MS:g} ms on JSON: median capacity "
        f"{found['recsched_capacity_50ms_qps']:.1f} QPS, median p95 "
        f"{found['recsched_common_load_p95_ms']:.1f} ms at the common load of "
        f"{results['args']['common_qps']:g} QPS: "
        + ("**met**." if found["recsched_meets_50ms"] else "**not met**."),
        "",
    ]


def _sweep_lines(results: dict[str, Any]) -> list[str]:
    document = results.get("sweep")
    if not document:
        return []
    sweep, args = document["rows"], document["runs"]
    lines = [
        "## MLServer's settings (sweep)",
        "",
        "From MLServer's documentation: `parallel_workers` (its inference pool; Seldon advises one "
        "per core) and adaptive batching (`max_batch_size`, `max_batch_time`), plus torch's "
        "intra-op threads per process. Same workload, one run each at the floor rate "
        f"({args['floor_s']:g} s) and at the common load ({args['common_s']:g} s) "
        "(`bench/peers.py sweep`); the best is the lowest p95 at the common load. Run "
        f"{document['date']}, load average {document['load_average_start']} at the start, "
        f"{document['load_average_end']} at the end.",
        "",
        f"| settings | p95 ms at {args['floor_qps']:g} QPS | p95 ms at {args['common_qps']:g} QPS "
        "| p99 ms there |",
        "|---|---|---|---|",
    ]
    for row in sweep:
        floor, common = row["floor"]["latency"], row["common_load"]["latency"]
        lines.append(
            f"| {row['label']} | {floor['p95_ms']:.0f} | {common['p95_ms']:.0f} "
            f"| {common['p99_ms']:.0f} |"
        )
    return [*lines, ""]


def _command_lines(results: dict[str, Any]) -> list[str]:
    first = results["rounds"][0]["recsched"]
    lines = [
        "## Exact load-test commands (round 1; `$URL` is the server under test)",
        "",
        "Each server first gets a 5 s warm-up at 5 QPS, then:",
        "",
        "```",
    ]
    keys = ("common_load", "floor", "capacity_100ms", "capacity_50ms")
    lines += list(dict.fromkeys(first[key]["command"] for key in keys if key in first))
    return [*lines, "```", ""]


def render(results: dict[str, Any]) -> str:
    lines = [
        *_header(results),
        *_check_lines(results.get("check")),
        *_capacity_table(results),
        *_latency_table(results),
        *_floor_lines(results),
        *_sweep_lines(results),
        *_command_lines(results),
    ]
    return "\n".join(lines)


def render_one_server(results: dict[str, Any], json_name: str) -> str:
    """A section of peers.md for a `measure --servers X` run: one server's capacity and
    latency, beside (not in place of) the comparison run above it."""
    (server, name), args = next(iter(_present(results).items())), results["args"]
    start = results.get("load_average_start")
    lines = [
        f"## {name} alone (`--servers {server}`)",
        "",
        f"Run of {results['date']}, commit {results['commit']}. Command: "
        f"`.venv/bin/python bench/peers.py measure --servers {server} --rounds "
        f"{args['rounds']} --batch {args['batch']} --common-qps {args['common_qps']:g} "
        f"--common-s {args['common_s']:g} --floor-s {args['floor_s']:g} --trial-s "
        f"{args['trial_s']:g} --targets-ms "
        f"{','.join(map(str, args.get('targets_ms', [100, 50])))}`; raw data in "
        f"`docs/benchmarks/{json_name}`. Machine: "
        f"{results['machine']['cpus']} CPUs ({results['machine']['processor']}), "
        f"{results['elapsed_s']} s, load average "
        + (f"{start} at the start, " if start else "")
        + f"{results['machine']['load_average']} at the end, after each round "
        f"{_load_range(results)}. Same workload, seeds and commands as the comparison above; "
        "every figure in this section comes from this run only, those above from theirs.",
        "",
    ]
    tables = [*_capacity_table(results), *_latency_table(results), *_command_lines(results)]
    lines += ["#" + line if line.startswith("## ") else line for line in tables]
    if server == "recsched" and "capacity_50ms" in results["rounds"][0]["recsched"]:
        tight = statistics.median(_values(results, "recsched", "capacity_50ms"))
        p95 = statistics.median(_latency(results, "recsched", "p95_ms"))
        met = tight > 0 or p95 <= TARGET_FLOOR_MS
        lines += [
            f"Floor, RecSched at p95 <= {TARGET_FLOOR_MS:g} ms on JSON (this run): median "
            f"capacity {tight:.1f} QPS, median p95 {p95:.1f} ms at {args['common_qps']:g} QPS: "
            + ("**met**." if met else "**not met**."),
            "",
        ]
    return "\n".join(lines)
