"""Where the time of one large RMC1 JSON query goes in the pod, stage by stage (issue 13, §3).

For the production mix's 95th-percentile query (611 items) and the largest (1024), on one thread in
this process: cutting the data arrays out and parsing the rest (`parse_json_body`), the INT64
indices (`ArrayText.int64_values`, one thread), the FP32 features (`ArrayText.as_array`), the whole
`decode_body` on one thread and as the pod runs it now (INT64 slices on the decode pool), one
request of B = 128 items through the model's TorchScript graph (a query of N items runs
ceil(N/128) of them on 2 workers), and encoding the JSON answer. Medians of `--repeats` runs,
wall ms. Writes the section "## Stages of one query" of docs/benchmarks/json_decode.md. Run:

    flock /tmp/recsched-bench.lock .venv/bin/python bench/json_stages.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from json_decode import json_query, one_thread, replace_section

from recsched_pod.dataplane.engine import configure_process_threads
from recsched_pod.dataplane.serving_graph import serving_graph
from recsched_pod.http.json_tensors import parse_json_body
from recsched_pod.http.protocol import decode_body, encode_response
from recsched_pod.models import build_model, model_spec

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Stages of one query"
BATCH = 128


def _median_ms(run: Callable[[], Any], repeats: int) -> float:
    took = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        took.append((time.perf_counter() - started) * 1e3)
    return statistics.median(took)


def _one_thread_decode(body: bytes, spec: Any) -> Any:
    with one_thread():
        return decode_body(body, None, spec, 1024)


def stages(items: int, repeats: int, scorer: Any) -> dict[str, float]:
    spec = model_spec("rmc1", 0.01)
    body = json_query(spec, items, seed=items)
    inputs = {t["name"]: t["data"] for t in parse_json_body(body)["inputs"]}
    query = decode_body(body, None, spec, 1024)
    assert query.dense is not None
    dense = torch.from_numpy(query.dense[:BATCH])
    sparse = torch.from_numpy(query.sparse[:BATCH])
    scores = np.zeros((items, 1), np.float32)
    with torch.inference_mode():
        return {
            "body_mb": len(body) / 1e6,
            "cut_and_parse_rest": _median_ms(lambda: parse_json_body(body), repeats),
            "int64_one_thread": _median_ms(inputs["sparse_indices"].int64_values, repeats),
            "fp32": _median_ms(inputs["dense_features"].as_array, repeats),
            "decode_one_thread": _median_ms(lambda: _one_thread_decode(body, spec), repeats),
            "decode_now": _median_ms(lambda: decode_body(body, None, spec, 1024), repeats),
            "request_of_128": _median_ms(lambda: scorer(dense, sparse), repeats),
            "encode_answer": _median_ms(
                lambda: encode_response("rmc1", None, scores, False), repeats
            ),
        }


COLUMNS = {
    "body_mb": "body MB",
    "cut_and_parse_rest": "cut + orjson rest",
    "int64_one_thread": "INT64 (1 thread)",
    "fp32": "FP32 (orjson)",
    "decode_one_thread": "decode, 1 thread",
    "decode_now": "decode, now",
    "request_of_128": "1 request of 128",
    "encode_answer": "encode answer",
}


def render(rows: dict[int, dict[str, float]], header: dict[str, str], repeats: int) -> str:
    lines = [
        SECTION,
        "",
        f"Run {header['date']}, {os.cpu_count()} CPUs; load average {header['before']} before, "
        f"{header['after']} after. Command: `flock /tmp/recsched-bench.lock .venv/bin/python "
        f"bench/json_stages.py --repeats {repeats}`. RMC1 (scale 0.01), the load test's JSON "
        f"bodies; wall ms, median of {repeats} runs each, in this process (GIL switch interval "
        "0.5 ms as in the pod). A query of N items runs ceil(N/128) requests on 2 workers: "
        "611 items = 5 requests, 3 rounds; 1024 = 8 requests, 4 rounds.",
        "",
        "| items | " + " | ".join(COLUMNS.values()) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for items, row in rows.items():
        cells = [f"{row[key]:.2f}" for key in COLUMNS]
        lines.append(f"| {items} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, ""]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="611,1024")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--report", type=Path, default=ROOT / "docs/benchmarks/json_decode.md")
    args = parser.parse_args()
    before = " ".join(f"{value:.2f}" for value in os.getloadavg())
    configure_process_threads(0.0005)
    model = build_model("rmc1", scale=0.01, seed=0).eval()
    scorer = serving_graph(model, torch.device("cpu"), "traced", 0).scorer
    rows = {int(items): stages(int(items), args.repeats, scorer) for items in args.sizes.split(",")}
    header = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "before": before,
        "after": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
    section = render(rows, header, args.repeats)
    replace_section(args.report, section)
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
