"""The router's aiohttp client to pods (`upstream_client = "aiohttp"`) keeps the contract of the
hand-written one: kept-alive connections, whole answers with only the kept headers, and which
failures it reports as safe to retry elsewhere; run against the same scripted servers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from recsched_pod.router.aiohttp_upstream import AiohttpUpstreamPool
from recsched_pod.router.upstream_client import (
    UpstreamBrokenError,
    UpstreamConnectError,
    UpstreamPool,
)
from support.asgi_server import free_port
from support.scripted_upstream import (
    BODY,
    KEEP,
    answer,
    echo_forever,
    read_request,
    scripted_server,
)

pytestmark = pytest.mark.timeout(20)


async def test_requests_reuse_one_kept_alive_connection() -> None:
    async with scripted_server(echo_forever) as (port, connections):
        pool = AiohttpUpstreamPool("127.0.0.1", port, KEEP)
        for _ in range(3):
            assert (await pool.post(b"/infer", [], [BODY], timeout_s=5)).status == 200
        assert len(connections) == 1
        assert pool.idle_count == 1
        pool.close()
        await pool.wait_closed()


async def test_answer_is_read_whole_with_only_kept_headers() -> None:
    async with scripted_server(echo_forever) as (port, _):
        pool = AiohttpUpstreamPool("127.0.0.1", port, KEEP)
        parts = [BODY[:1000], memoryview(BODY)[1000:], bytearray(b"tail")]
        response = await pool.post(b"/infer", [(b"content-type", b"x")], parts, timeout_s=5)
        assert bytes(response.body) == BODY + b"tail"
        assert sorted(response.headers) == [
            (b"content-type", b"application/octet-stream"),
            (b"inference-header-content-length", b"7"),
        ]
        pool.close()
        await pool.wait_closed()


async def test_connection_refused_is_a_retryable_connect_error() -> None:
    pool = AiohttpUpstreamPool("127.0.0.1", free_port(), KEEP)
    with pytest.raises(UpstreamConnectError, match=r"connect to 127\.0\.0\.1"):
        await pool.post(b"/infer", [], [b"q"], timeout_s=5)
    pool.close()
    await pool.wait_closed()


async def test_close_before_any_answer_byte_is_a_retryable_connect_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with scripted_server(hang_up) as (port, connections):
        pool = AiohttpUpstreamPool("127.0.0.1", port, KEEP)
        with pytest.raises(UpstreamConnectError, match="before any response"):
            await pool.post(b"/infer", [], [b"q"], timeout_s=5)
        assert len(connections) == 2  # tried once more, as a stale connection would be
        assert pool.idle_count == 0
        pool.close()
        await pool.wait_closed()


async def test_close_mid_answer_is_a_broken_error_not_retried() -> None:
    async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"x" * 100)[:-50])
        await writer.drain()

    async with scripted_server(half_answer) as (port, connections):
        pool = AiohttpUpstreamPool("127.0.0.1", port, KEEP)
        with pytest.raises(UpstreamBrokenError, match="mid-response"):
            await pool.post(b"/infer", [], [b"q"], timeout_s=5)
        assert len(connections) == 1
        assert pool.idle_count == 0
        pool.close()
        await pool.wait_closed()


async def test_no_answer_within_the_timeout_raises_timeout() -> None:
    received = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        received.set()
        await reader.read()

    async with scripted_server(silent) as (port, _):
        pool = AiohttpUpstreamPool("127.0.0.1", port, KEEP)
        with pytest.raises(TimeoutError):
            await pool.post(b"/infer", [], [b"q"], timeout_s=0.2)
        assert received.is_set(), "the timeout struck while waiting for the answer"
        assert pool.idle_count == 0
        pool.close()
        await pool.wait_closed()


async def test_reused_connection_dropped_before_answering_is_retried_once() -> None:
    served: list[int] = []

    async def drop_second_request(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        first_connection = not served
        while True:
            await read_request(reader)
            if first_connection and served:
                return  # the pod closed this connection as the request arrived
            served.append(1)
            writer.write(answer(b"ok"))
            await writer.drain()

    async with scripted_server(drop_second_request) as (port, connections):
        pool = AiohttpUpstreamPool("127.0.0.1", port, KEEP)
        for _ in range(2):
            assert bytes((await pool.post(b"/a", [], [b"q"], timeout_s=5)).body) == b"ok"
        assert len(connections) == 2 and len(served) == 2
        pool.close()
        await pool.wait_closed()


@pytest.mark.parametrize(
    ("setting", "client"), [("lean", UpstreamPool), ("aiohttp", AiohttpUpstreamPool)]
)
def test_router_uses_the_upstream_client_its_settings_name(
    tmp_path: Path, setting: str, client: type
) -> None:
    from recsched_pod.live_config import LiveConfig, initial_config
    from recsched_pod.metrics import RouterMetrics
    from recsched_pod.models import model_spec
    from recsched_pod.router.app import RouterRuntime
    from support.pod_fixtures import pod_settings

    settings = pod_settings(tmp_path, role="router", upstream_client=setting)
    runtime = RouterRuntime(
        settings=settings,
        spec=model_spec("rmc1", scale=settings.scale),
        live=LiveConfig(initial_config(settings)),
        metrics=RouterMetrics("test-rm"),
        body_limit_bytes=1 << 20,
    )
    assert type(runtime.upstream("127.0.0.1:9")) is client
