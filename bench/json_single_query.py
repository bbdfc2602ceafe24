"""One JSON query at a time through a real pod, before and after a change to the pod (issue 13, §3).

Two pods serve RMC1 (scale 0.01, 2 workers, `--pin-workers auto`, B = 128, as in
docs/benchmarks/peers.md): "before" runs the pod code of another checkout (`--before`, e.g. a
`git worktree add /tmp/h2-old <commit>`, through its own PYTHONPATH), "after" this tree's. Bodies
come from the load test's JSON encoder (what `recsched-loadtest --protocol json` sends), one per
size. Each round visits every size and, per size, both pods in alternating order, timing
`--repeats` queries after one untimed one; a figure is the median over rounds of each round's
median, with the range over rounds. Writes docs/benchmarks/json_single_query.json and the section
"## One query at a time through the pod" of docs/benchmarks/json_decode.md. Run under the lock:

    flock /tmp/recsched-bench.lock .venv/bin/python bench/json_single_query.py --before /tmp/h2-old
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from json_decode import json_query, replace_section

from recsched_pod.models import model_spec

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## One query at a time through the pod"
MODEL, BATCH, WORKERS = "rmc1", 128, 2


def _commit(tree: Path) -> str:
    reply = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=tree
    )
    return reply.stdout.strip()


def _time_ms(client: httpx.Client, url: str, body: bytes, repeats: int) -> float:
    headers = {"Content-Type": "application/json"}
    took_ms = []
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        reply = client.post(f"{url}/v2/models/{MODEL}/infer", content=body, headers=headers)
        reply.raise_for_status()
        if attempt:  # the first of each visit is untimed
            took_ms.append((time.perf_counter() - started) * 1e3)
    return statistics.median(took_ms)


def measure(before: Path, sizes: list[int], rounds: int, repeats: int) -> dict[str, Any]:
    spec = model_spec(MODEL, 0.01)
    bodies = {items: json_query(spec, items, seed=items) for items in sizes}
    old_pod = ("env", f"PYTHONPATH={before / 'inference_pod' / 'src'}", *harness.POD)
    runs: dict[str, dict[int, list[float]]] = {"before": {}, "after": {}}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="json-single-")))
        extra = ("--pin-workers", "auto")
        urls = {
            name: stack.enter_context(
                harness.running_pod(
                    MODEL, workers=WORKERS, batch=BATCH, extra_args=extra, workdir=workdir,
                    launcher=launcher,
                )
            ).url
            for name, launcher in (("before", old_pod), ("after", harness.POD))
        }  # fmt: skip
        client = stack.enter_context(httpx.Client(timeout=60))
        for round_index in range(rounds):
            for items in sizes:
                order = ["before", "after"] if (round_index + items) % 2 else ["after", "before"]
                for name in order:
                    took = _time_ms(client, urls[name], bodies[items], repeats)
                    runs[name].setdefault(items, []).append(round(took, 3))
            print(f"round {round_index + 1}/{rounds} done", flush=True)
    return {
        "sizes": sizes,
        "body_bytes": {str(items): len(body) for items, body in bodies.items()},
        "rounds_ms": {name: {str(k): v for k, v in by.items()} for name, by in runs.items()},
    }


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def render(results: dict[str, Any]) -> str:
    rounds = results["rounds_ms"]
    lines = [
        SECTION,
        "",
        f"Run {results['date']}, {results['machine']}; load average {results['load_before']} "
        f"before, {results['load_after']} after. Command: `{results['command']}`; raw data in "
        "`docs/benchmarks/json_single_query.json`. Client latency of one RMC1 JSON query at a "
        f"time (the load test's bodies, scale 0.01) to a pod with {WORKERS} workers pinned, "
        f"B = {BATCH}: before = the pod at commit {results['before_commit']}, after = at "
        f"{results['after_commit']}, both running, visited alternately. Median over "
        f"{results['rounds']} rounds of each round's median of {results['repeats']} queries, "
        "range over rounds in brackets, ms.",
        "",
        "| items | body | before ms | after ms | after/before |",
        "|---|---|---|---|---|",
    ]
    for items in map(str, results["sizes"]):
        before, after = rounds["before"][items], rounds["after"][items]
        ratio = statistics.median(after) / statistics.median(before)
        lines.append(
            f"| {items} | {results['body_bytes'][items] / 1e6:.2f} MB | {_cell(before)} | "
            f"{_cell(after)} | {ratio:.2f} |"
        )
    return "\n".join([*lines, ""]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the old pod")
    parser.add_argument("--sizes", default="16,128,611,1024")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/json_single_query.json")
    parser.add_argument("--report", type=Path, default=ROOT / "docs/benchmarks/json_decode.md")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    if args.render_only:
        replace_section(args.report, render(json.loads(args.out.read_text(encoding="utf-8"))))
        return 0
    load_before = " ".join(f"{value:.2f}" for value in os.getloadavg())
    found = measure(args.before, [int(s) for s in args.sizes.split(",")], args.rounds, args.repeats)
    results = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {harness.cpu_model()}",
        "command": "flock /tmp/recsched-bench.lock .venv/bin/python bench/json_single_query.py "
        f"--before {args.before} --rounds {args.rounds} --repeats {args.repeats}",
        "before_commit": _commit(args.before),
        "after_commit": _commit(ROOT),
        "rounds": args.rounds,
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        **found,
    }
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    section = render(results)
    replace_section(args.report, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
