"""The router's forwarding rules against scripted pods (no model): a refused connection is retried
on another endpoint, an answer cut off mid-way is not; and the remembered header checks, which
must answer exactly as `check_header` does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from recsched_pod.errors import InvalidInputError, UpstreamError
from recsched_pod.http.protocol import check_header, split_body
from recsched_pod.live_config import LiveConfig, initial_config
from recsched_pod.metrics import RouterMetrics
from recsched_pod.models import model_spec
from recsched_pod.router.app import RouterRuntime
from recsched_pod.router.infer import QuerySizes, ReceivedBody
from support.asgi_server import free_port
from support.pod_fixtures import TEST_SCALE, binary_body, pod_settings, rmc1_arrays

pytestmark = pytest.mark.timeout(30)
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


@asynccontextmanager
async def scripted_pod(reply: bytes) -> AsyncIterator[tuple[str, list[int]]]:
    """A pod that reads one request per connection, writes `reply` and closes; yields its
    address and a list with one entry per request received."""
    requests: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        requests.append(1)
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", requests


def runtime_for(tmp_path: Path, addresses: list[str]) -> RouterRuntime:
    settings = pod_settings(tmp_path, role="router", cpu_endpoints=",".join(addresses))
    runtime = RouterRuntime(
        settings=settings,
        spec=model_spec("rmc1", scale=TEST_SCALE),
        live=LiveConfig(initial_config(settings)),
        metrics=RouterMetrics("test-rm"),
        body_limit_bytes=1 << 20,
    )
    runtime.pools["cpu"].replace(addresses)
    for endpoint in runtime.pools["cpu"].endpoints.values():
        endpoint.ready = True
    return runtime


def upstream_errors(runtime: RouterRuntime, kind: str) -> float:
    value = runtime.metrics.registry.get_sample_value(
        "recsched_router_upstream_errors_total",
        {"recmodel": "test-rm", "pool": "cpu", "kind": kind},
    )
    return value or 0.0


async def test_refused_endpoint_is_marked_down_and_the_query_served_elsewhere(
    tmp_path: Path,
) -> None:
    refused = f"127.0.0.1:{free_port()}"
    async with scripted_pod(ANSWER) as (good, requests):
        runtime = runtime_for(tmp_path, [refused, good])
        runtime.pools["cpu"].endpoints[good].outstanding = 1  # so the refused one is tried first
        response = await runtime.forward("cpu", b"/v2/models/rmc1/infer", [], [b"{}"])
    assert response.status == 200 and bytes(response.body) == b"{}"
    assert requests == [1]
    assert not runtime.pools["cpu"].endpoints[refused].ready
    assert upstream_errors(runtime, "connect") == 1


async def test_answer_cut_off_mid_way_is_a_502_and_never_retried(tmp_path: Path) -> None:
    async with (
        scripted_pod(ANSWER[:-1]) as (cut_off, cut_requests),
        scripted_pod(ANSWER) as (good, good_requests),
    ):
        runtime = runtime_for(tmp_path, [cut_off, good])
        runtime.pools["cpu"].endpoints[good].outstanding = 1  # so the cut-off one is tried first
        with pytest.raises(UpstreamError, match="mid-response"):
            await runtime.forward("cpu", b"/v2/models/rmc1/infer", [], [b"{}"])
    assert cut_requests == [1] and good_requests == []
    assert upstream_errors(runtime, "disconnect") == 1


def received(body: bytes, split_at: int) -> ReceivedBody:
    parts: list[bytes | bytearray | memoryview] = [body[:split_at], body[split_at:]]
    return ReceivedBody(parts, len(body))


def test_remembered_header_gives_check_header_s_item_count() -> None:
    spec = model_spec("rmc1", scale=TEST_SCALE)
    sizes = QuerySizes(spec, max_items=128)
    for items in (3, 7, 3):
        body, headers = binary_body(*rmc1_arrays(items))
        length = headers["Inference-Header-Content-Length"]
        header, binary = split_body(body, length)
        assert check_header(header, len(binary), spec, 128).items == items
        assert sizes.items(received(body, 1000), length.encode()) == items


def test_known_header_with_a_different_binary_size_is_refused_like_at_the_pod() -> None:
    spec = model_spec("rmc1", scale=TEST_SCALE)
    sizes = QuerySizes(spec, max_items=128)
    body, headers = binary_body(*rmc1_arrays(4))
    length = headers["Inference-Header-Content-Length"].encode()
    assert sizes.items(received(body, 1000), length) == 4
    for _ in range(2):  # refused every time: a failing header is never remembered
        with pytest.raises(InvalidInputError, match="binary part is"):
            sizes.items(received(body[:-8], 1000), length)


def test_header_split_across_chunks_is_checked_as_a_whole() -> None:
    spec = model_spec("rmc1", scale=TEST_SCALE)
    sizes = QuerySizes(spec, max_items=128)
    body, headers = binary_body(*rmc1_arrays(5))
    length = headers["Inference-Header-Content-Length"].encode()
    assert sizes.items(received(body, 10), length) == 5  # first chunk shorter than the header
    json_only = np.zeros(1).tobytes()  # neither a header length nor valid JSON
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        sizes.items(received(json_only, 3), None)
