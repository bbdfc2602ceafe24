"""JSON decode time per query in the pod: the list path, the one-thread text path and the current
one (INT64 data on the decode pool).

Bodies come from the load test's own encoder (`prepare_queries`, protocol json), so they are what
`recsched-loadtest --protocol json` sends. Per model and query size:

* list: `orjson.loads` of the whole body, then `decode_query` on lists (the original path,
  still the pod's fallback);
* one thread: `decode_body` with every slice parsed on the calling thread (the pod up to commit
  314e50d: `json_tensors.PREFETCH_MIN_BYTES` set out of reach);
* now: `decode_body` as it is (long INT64 texts parsed on `json_prefetch`'s pool while the
  calling thread parses the FP32 data);
* loop stall: the longest an asyncio ticker (1 ms period) waits while one query is decoded the
  way the pod does it, inline (list) or as `server._decode` does (a thread above
  `INLINE_JSON_DECODE_BYTES`, now).

Each decode is timed in wall time and in the process's CPU time (`time.process_time`, all its
threads, so the pool's work counts): on a shared 2-core machine CPU time is the steadier measure
of the work. Rounds alternate the variants; each figure is the median over rounds of a per-round
median, with the range over rounds. Writes `docs/benchmarks/json_decode.json` and the section
"## JSON decoding" of `docs/benchmarks/json_decode.md`. Run (under the bench lock):
`flock /tmp/recsched-bench.lock .venv/bin/python bench/json_decode.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from recsched_loadtest.encoding import prepare_queries
from recsched_loadtest.indices import IndexDistribution
from recsched_loadtest.signature import ModelSignature
from recsched_pod.dataplane.server import INLINE_JSON_DECODE_BYTES
from recsched_pod.http import json_tensors
from recsched_pod.http.protocol import decode_body, decode_query
from recsched_pod.models import model_spec
from recsched_pod.models.spec import ModelInputSpec

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## JSON decoding"


def json_query(spec: ModelInputSpec, items: int, seed: int) -> bytes:
    signature = ModelSignature(
        spec.name,
        spec.dense_features,
        tuple(spec.table_rows),
        spec.lookups_per_table,
        spec.output_width,
        1024,
    )
    sizes = np.array([items], dtype=np.int64)
    queries = prepare_queries(
        np.random.default_rng(seed), signature, sizes, IndexDistribution(), protocol="json"
    )
    return queries.body(0)


def before(body: bytes, spec: ModelInputSpec) -> Any:
    return decode_query(orjson.loads(body), b"", spec, 1024)


def after(body: bytes, spec: ModelInputSpec) -> Any:
    return decode_body(body, None, spec, 1024)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Every slice on the calling thread, as the pod parsed them up to commit 314e50d."""
    threshold = json_tensors.PREFETCH_MIN_BYTES
    json_tensors.PREFETCH_MIN_BYTES = 1 << 62
    try:
        yield
    finally:
        json_tensors.PREFETCH_MIN_BYTES = threshold


def previous(body: bytes, spec: ModelInputSpec) -> Any:
    with one_thread():
        return decode_body(body, None, spec, 1024)


def median_ms(
    decode: Callable[[bytes, ModelInputSpec], Any], body: bytes, spec: Any
) -> tuple[float, float]:
    """Median wall and process-CPU milliseconds of one decode."""
    gc.collect()
    walls: list[float] = []
    cpus: list[float] = []
    started = time.perf_counter()
    while len(walls) < 3 or (len(walls) < 50 and time.perf_counter() - started < 0.5):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        decode(body, spec)
        cpus.append(time.process_time() - begin_cpu)
        walls.append(time.perf_counter() - begin)
    return 1e3 * statistics.median(walls), 1e3 * statistics.median(cpus)


async def loop_stall_ms(body: bytes, spec: ModelInputSpec, threaded: bool) -> float:
    """Longest wait of a 1 ms ticker beyond its period while one query is decoded."""
    done = asyncio.Event()
    worst_s = 0.0

    async def ticker() -> None:
        nonlocal worst_s
        while not done.is_set():
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            worst_s = max(worst_s, time.perf_counter() - due)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    worst_s = 0.0
    if threaded and len(body) > INLINE_JSON_DECODE_BYTES:
        await asyncio.to_thread(decode_body, body, None, spec, 1024)
    elif threaded:
        decode_body(body, None, spec, 1024)
    else:
        before(body, spec)
    await asyncio.sleep(0.005)
    done.set()
    await task
    return 1e3 * worst_s


VARIANTS = {"before": before, "previous": previous, "after": after}


def measure(model: str, items: int, rounds: int) -> dict[str, Any]:
    spec = model_spec(model, 0.01)
    body = json_query(spec, items, seed=items)
    reference = before(body, spec)
    for decode in (previous, after):
        query = decode(body, spec)
        np.testing.assert_array_equal(reference.sparse, query.sparse)
        if reference.dense is not None:
            assert reference.dense.tobytes() == query.dense.tobytes()
    keys = [*VARIANTS, *(f"{name}_cpu" for name in VARIANTS), "stall_b", "stall_a"]
    runs: dict[str, list[float]] = {key: [] for key in keys}
    for _ in range(rounds):
        for name, decode in VARIANTS.items():
            wall_ms, cpu_ms = median_ms(decode, body, spec)
            runs[name].append(wall_ms)
            runs[f"{name}_cpu"].append(cpu_ms)
        runs["stall_b"].append(asyncio.run(loop_stall_ms(body, spec, threaded=False)))
        runs["stall_a"].append(asyncio.run(loop_stall_ms(body, spec, threaded=True)))
    return {
        "model": model,
        "items": items,
        "body_bytes": len(body),
        "rounds": {key: [round(value, 3) for value in values] for key, values in runs.items()},
        **{f"{key}_median_ms": round(statistics.median(v), 3) for key, v in runs.items()},
    }


def render(results: dict[str, Any]) -> str:
    lines = [
        SECTION,
        "",
        f"Run {results['date']} on {results['machine']}; load average {results['load_before']} "
        f"before, {results['load_after']} after. Command: `{results['command']}`; raw data in "
        "`docs/benchmarks/json_decode.json`. Bodies from the load test's JSON encoder (scale "
        "0.01). List = `orjson.loads` of the whole body and `decode_query` on lists (the "
        "original path, still the fallback); one thread = `decode_body` with every slice on the "
        "calling thread (the pod up to commit 314e50d); now = `decode_body` as it is, long INT64 "
        "texts parsed on the decode pool while the calling thread parses the FP32 data. CPU = "
        "the process's CPU time (all threads), wall = elapsed. Loop stall = longest extra wait "
        "of a 1 ms asyncio ticker while one query is decoded as the pod does it: inline for the "
        "list path; now, on a thread above "
        f"{INLINE_JSON_DECODE_BYTES >> 10} KiB. Medians of {results['rounds']} alternating "
        "rounds, range in brackets.",
        "",
        "| model | items | body | list CPU ms | one thread CPU ms | now CPU ms | list wall ms |"
        " one thread wall ms | now wall ms | now/one thread wall | loop stall list ms |"
        " loop stall now ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        rounds = row["rounds"]

        def cell(key: str, rounds: dict[str, list[float]] = rounds) -> str:
            values = rounds[key]
            return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

        ratio = row["after_median_ms"] / row["previous_median_ms"]
        lines.append(
            f"| {row['model']} | {row['items']} | {row['body_bytes'] / 1e6:.2f} MB | "
            f"{cell('before_cpu')} | {cell('previous_cpu')} | {cell('after_cpu')} | "
            f"{cell('before')} | {cell('previous')} | {cell('after')} | {ratio:.2f} | "
            f"{cell('stall_b')} | {cell('stall_a')} |"
        )
    lines += ["", *READING]
    return "\n".join(lines) + "\n"


READING = [
    "Reading: INT64 data (RMC1's 640 indices per item) are parsed by numpy's text parser with "
    "JSON's rules checked around it, FP32 data (RMC1's 128 and WnD's 512 dense features per "
    "item) by orjson, both in slices and without a Python object per INT64 number. numpy's "
    "parser releases the GIL and orjson does not, so the pod now parses a long INT64 text's "
    "slices on a pool of threads (one per CPU, 2 to 4) while the decoding thread parses the "
    "FP32 data: about the same CPU time, spread over both cores, so less wall time for the "
    "queries whose indices dominate (RMC1). The loop stall does not grow with the body: a "
    f"decode on a thread holds the GIL one slice ({json_tensors.SLICE_BYTES >> 10} KiB of text) "
    "at a time. Numpy-only parsers meant to beat numpy's and orjson's were measured no "
    "faster (the section below).",
]


def replace_section(report: Path, section: str) -> None:
    """Put `section` (a markdown section, its heading on the first line) into `report`, in place
    of the section of the same heading if there is one."""
    heading = section.splitlines()[0]
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    if heading in text:
        start = text.index(heading)
        following = text.find("\n## ", start + len(heading))
        text = text[:start] + section + (text[following + 1 :] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    report.write_text(text.lstrip("\n"), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--render-only", action="store_true", help="rewrite the report from --out, no measuring"
    )
    parser.add_argument("--models", default="rmc1,wnd")
    parser.add_argument("--sizes", default="16,128,611,1024")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/json_decode.json")
    parser.add_argument("--report", type=Path, default=ROOT / "docs/benchmarks/json_decode.md")
    args = parser.parse_args()
    if args.render_only:
        replace_section(args.report, render(json.loads(args.out.read_text(encoding="utf-8"))))
        return 0
    load_before = " ".join(f"{value:.2f}" for value in os.getloadavg())
    rows = [
        measure(model, int(items), args.rounds)
        for model in args.models.split(",")
        for items in args.sizes.split(",")
    ]
    results = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}",
        "command": "flock /tmp/recsched-bench.lock .venv/bin/python bench/json_decode.py",
        "rounds": args.rounds,
        "load_before": load_before,
        "load_after": " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "rows": rows,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    section = render(results)
    replace_section(args.report, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
