"""A deliberately trivial OIP v2 server for measuring the load generator's own limit.

Raw asyncio protocol on uvloop, HTTP/1.1 keep-alive, no framework: it answers readiness and
metadata for model `fast`, and every infer with a canned binary response whose `scores` shape
echoes the query's item count (read from the request's JSON header), so the client's response
check passes. It does no inference, so the client process is the bottleneck.

Usage: python bench/loadtest_fast_server.py  -> prints "PORT <n>" once listening.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from typing import Any

_SHAPE = re.compile(rb'"shape":\[(\d+)')
_METADATA = json.dumps(
    {
        "name": "fast",
        "versions": ["1"],
        "platform": "none",
        "inputs": [
            {"name": "dense_features", "datatype": "FP32", "shape": [-1, 4]},
            {"name": "sparse_indices", "datatype": "INT64", "shape": [-1, 2, 2]},
        ],
        "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 1]}],
        "parameters": {"table_rows": "1000,1000", "max_query_items": 1024, "device": "cpu"},
    }
).encode()


def _response(body: bytes, extra_headers: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra_headers
        + b"\r\n"
        + body
    )


_CACHE: dict[int, bytes] = {}


def _infer_response(items: int) -> bytes:
    if items not in _CACHE:
        header = json.dumps(
            {
                "outputs": [
                    {
                        "name": "scores",
                        "datatype": "FP32",
                        "shape": [items, 1],
                        "parameters": {"binary_data_size": 4 * items},
                    }
                ]
            }
        ).encode()
        extra = b"Inference-Header-Content-Length: " + str(len(header)).encode() + b"\r\n"
        _CACHE[items] = _response(header + bytes(4 * items), extra)
    return _CACHE[items]


class _Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport  # uvloop's transport is not an asyncio.Transport subclass
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            path = head.split(b" ", 2)[1]
            if path.endswith(b"/infer"):
                match = _SHAPE.search(body, 0, 2048)
                self.transport.write(_infer_response(int(match.group(1)) if match else 1))
            elif path.startswith(b"/v2/models/"):
                self.transport.write(_response(_METADATA))
            else:
                self.transport.write(_response(b'{"ready": true}'))


async def _serve() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = await asyncio.get_running_loop().create_server(_Http, sock=sock)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(_serve())
    except ImportError:
        asyncio.run(_serve())
