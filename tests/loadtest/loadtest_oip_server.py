"""A small OIP v2 server with a known queue, for testing the load test (run as a subprocess).

It speaks the pod's protocol (metadata, binary and JSON infer, /admin/config with a bearer token
and generations) but computes no model: each query is a job in a FIFO queue with `servers`
identical servers and a seeded service-time law (`det` or `exp`). Departure times follow the
Lindley recursion on time.perf_counter() (not loop.time(): under uvloop that is a cached
millisecond clock) and each response is released by sleeping until its
departure, so the queue is exact in wall time and sleep overruns never accumulate (each one only
delays its own response). That makes M/D/c and M/M/c theory applicable to what the client sees.

Test hooks (`PUT /_test/behaviour`, `GET /_test/stats`) reset the queue, inject a stall (no
service during a time window), periodic failures, hangs and wrong answers.

Usage: python loadtest_oip_server.py  -> prints "PORT <n>" on stdout once listening.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import socket
import sys
import time
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect

TOKEN = "test-token"
MODELS: dict[str, dict[str, Any]] = {
    "toy": {"dense": 4, "table_rows": [100, 50, 10], "lookups": 2, "outputs": 1},
    "nodense": {"dense": 0, "table_rows": [1000, 1000], "lookups": 3, "outputs": 2},
}
INITIAL_CONFIG = {"generation": 0, "batchSize": 64, "offloadThreshold": 1025, "workers": 1}
DEFAULT_BEHAVIOUR: dict[str, Any] = {
    "service": "det",  # det | exp
    "service_s": 0.001,
    "servers": None,  # None: follow the config document's `workers`
    "seed": 7,
    "stall_at_s": None,  # seconds after the first query since the behaviour was set
    "stall_s": 0.0,
    "fail_every": 0,
    "fail_status": 503,
    "hang_every": 0,
    "hang_s": 5.0,
    "wrong_items_every": 0,
    "initial_generation": 0,
}


class QueueState:
    def __init__(self) -> None:
        self.config: dict[str, Any] = dict(INITIAL_CONFIG)
        self.admin_requests: list[dict[str, Any]] = []
        self.reset(dict(DEFAULT_BEHAVIOUR))

    def reset(self, behaviour: dict[str, Any]) -> None:
        self.behaviour = {**DEFAULT_BEHAVIOUR, **behaviour}
        self.config = {**INITIAL_CONFIG, "generation": int(self.behaviour["initial_generation"])}
        self.admin_requests = []
        self.rng = np.random.default_rng(int(self.behaviour["seed"]))
        self.free_at: list[float] = []
        self.requests = 0
        self.bad_requests = 0
        self.epoch: float | None = None  # the first query after a reset starts the clock

    def servers(self) -> int:
        configured = self.behaviour["servers"]
        return int(configured if configured is not None else self.config["workers"])

    def departure(self, arrival: float) -> float:
        """Lindley recursion for a FIFO queue with c servers."""
        if self.epoch is None:
            self.epoch = arrival
        while len(self.free_at) < self.servers():
            heapq.heappush(self.free_at, self.epoch)
        start = max(arrival, heapq.heappop(self.free_at))
        stall_at = self.behaviour["stall_at_s"]
        if stall_at is not None:
            stall_start = self.epoch + float(stall_at)
            stall_end = stall_start + float(self.behaviour["stall_s"])
            if stall_start <= start < stall_end:
                start = stall_end
        mean_s = float(self.behaviour["service_s"])
        service = mean_s if self.behaviour["service"] == "det" else self.rng.exponential(mean_s)
        heapq.heappush(self.free_at, start + service)
        return start + service


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps({"error": message})
    return Response(body, status, headers=headers, media_type="application/json")


def _parse_infer(model: dict[str, Any], body: bytes, header_length: str | None) -> int:
    """Validate the request like the pod would; return N (items). Raises ValueError."""
    if header_length is not None:
        header = json.loads(body[: int(header_length)])
        offset = int(header_length)
        tensors = {}
        for entry in header["inputs"]:
            size = int(entry["parameters"]["binary_data_size"])
            dtype = "<f4" if entry["datatype"] == "FP32" else "<i8"
            data = np.frombuffer(body[offset : offset + size], dtype=dtype)
            offset += size
            tensors[entry["name"]] = data.reshape(entry["shape"])
        if offset != len(body):
            raise ValueError(f"body has {len(body)} bytes, header declares {offset}")
    else:
        header = json.loads(body)
        tensors = {
            entry["name"]: np.asarray(entry["data"]).reshape(entry["shape"])
            for entry in header["inputs"]
        }
    sparse = tensors["sparse_indices"]
    items, tables, lookups = sparse.shape
    if (tables, lookups) != (len(model["table_rows"]), model["lookups"]):
        raise ValueError(f"sparse_indices shape {sparse.shape}")
    rows = np.asarray(model["table_rows"]).reshape(1, -1, 1)
    if sparse.min() < 0 or np.any(sparse >= rows):
        raise ValueError("sparse_indices out of range")
    if model["dense"]:
        if tensors["dense_features"].shape != (items, model["dense"]):
            raise ValueError("dense_features shape")
    elif "dense_features" in tensors:
        raise ValueError("unexpected dense_features")
    return int(items)


def build_app() -> FastAPI:
    app = FastAPI()
    state: dict[str, QueueState] = {}

    def queue() -> QueueState:
        if "queue" not in state:
            state["queue"] = QueueState()
        return state["queue"]

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.get("/v2/models/{name}")
    async def metadata(name: str) -> Response:
        if name not in MODELS:
            return _error(404, f"unknown model {name}")
        model = MODELS[name]
        inputs = []
        if model["dense"]:
            inputs.append(
                {"name": "dense_features", "datatype": "FP32", "shape": [-1, model["dense"]]}
            )
        inputs.append(
            {
                "name": "sparse_indices",
                "datatype": "INT64",
                "shape": [-1, len(model["table_rows"]), model["lookups"]],
            }
        )
        document = {
            "name": name,
            "versions": ["1"],
            "platform": "pytorch_test",
            "inputs": inputs,
            "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, model["outputs"]]}],
            "parameters": {
                "table_rows": ",".join(str(rows) for rows in model["table_rows"]),
                "max_query_items": 1024,
                "device": "cpu",
            },
        }
        return Response(json.dumps(document), media_type="application/json")

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        arrival = time.perf_counter()
        state_now = queue()
        if name not in MODELS:
            return _error(404, f"unknown model {name}")
        try:
            body = await request.body()
        except ClientDisconnect:  # the client gave up (its deadline): nothing to answer
            return Response(status_code=499)
        try:
            items = _parse_infer(
                MODELS[name], body, request.headers.get("inference-header-content-length")
            )
        except (ValueError, KeyError, TypeError) as exc:
            state_now.bad_requests += 1
            return _error(400, f"invalid request: {exc}")
        state_now.requests += 1
        number = state_now.requests
        behaviour = state_now.behaviour
        if behaviour["hang_every"] and number % behaviour["hang_every"] == 0:
            await asyncio.sleep(float(behaviour["hang_s"]))
        elif behaviour["fail_every"] and number % behaviour["fail_every"] == 0:
            return _error(int(behaviour["fail_status"]), "injected", {"Retry-After": "100"})
        departure = state_now.departure(arrival)
        await asyncio.sleep(max(0.0, departure - time.perf_counter()))
        if behaviour["wrong_items_every"] and number % behaviour["wrong_items_every"] == 0:
            items += 1
        width = MODELS[name]["outputs"]
        header = json.dumps(
            {
                "model_name": name,
                "outputs": [
                    {
                        "name": "scores",
                        "datatype": "FP32",
                        "shape": [items, width],
                        "parameters": {"binary_data_size": 4 * items * width},
                    }
                ],
            }
        ).encode()
        return Response(
            header + bytes(4 * items * width),
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(len(header))},
        )

    def authorised(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {TOKEN}"

    @app.get("/admin/config")
    async def get_config(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "missing or wrong bearer token")
        return Response(json.dumps(queue().config), media_type="application/json")

    @app.put("/admin/config")
    async def put_config(request: Request) -> Response:
        document = await request.json()
        queue().admin_requests.append(
            {"authorization": request.headers.get("authorization"), "body": document}
        )
        if not authorised(request):
            return _error(401, "missing or wrong bearer token")
        served = int(queue().config["generation"])
        applied = int(document.get("generation", 0)) > served
        if applied:
            queue().config = document  # older or equal generations are ignored
        answer = {  # the pod's answer (`recsched_pod.http.shell.add_admin_routes`)
            "applied": applied,
            "reason": "applied" if applied else f"generation already {served}",
            "config": queue().config,
        }
        return Response(json.dumps(answer), media_type="application/json")

    @app.put("/_test/behaviour")
    async def set_behaviour(request: Request) -> dict[str, Any]:
        queue().reset(await request.json())
        return queue().behaviour

    @app.get("/_test/stats")
    async def stats() -> dict[str, Any]:
        current = queue()
        return {
            "requests": current.requests,
            "bad_requests": current.bad_requests,
            "config": current.config,
            "admin_requests": current.admin_requests,
        }

    return app


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(build_app(), log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    sys.exit(main())
