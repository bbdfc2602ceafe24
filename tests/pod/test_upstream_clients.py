"""The router's two clients to pods, the hand-written one (`upstream_client = "lean"`, the default)
and aiohttp's (`"aiohttp"`), hold one contract against the same scripted loopback servers:
kept-alive connections, whole answers with only the kept headers, Content-Length and chunked
answers, and which failures they report as safe to retry elsewhere.

Where the two differ on purpose the expectation is per client (`Expect`): aiohttp retries a
close that comes before any answer byte on a fresh connection, the lean client reports it at
once; only the lean client's idle connections can be inspected (`test_lean_...`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from recsched_pod.router.aiohttp_upstream import AiohttpUpstreamPool
from recsched_pod.router.upstream_client import (
    BodyPart,
    UpstreamBrokenError,
    UpstreamConnectError,
    UpstreamPool,
    UpstreamResponse,
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
from support.waiting import eventually

pytestmark = pytest.mark.timeout(20)


class Client(Protocol):
    @property
    def idle_count(self) -> int: ...

    async def post(
        self,
        path: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body_parts: Sequence[BodyPart],
        timeout_s: float,
    ) -> UpstreamResponse: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Expect:
    """What one client does where the two differ on purpose."""

    connections_after_close_before_answer: int  # 2: retried once on a fresh connection


EXPECT = {
    "lean": Expect(connections_after_close_before_answer=1),
    "aiohttp": Expect(connections_after_close_before_answer=2),
}


@dataclass
class Clients:
    kind: str
    expect: Expect
    make: Callable[[int], Client]


@pytest.fixture(params=["lean", "aiohttp"])
async def clients(request: pytest.FixtureRequest) -> AsyncIterator[Clients]:
    kind: str = request.param
    made: list[UpstreamPool | AiohttpUpstreamPool] = []

    def make(port: int) -> Client:
        pool = (UpstreamPool if kind == "lean" else AiohttpUpstreamPool)("127.0.0.1", port, KEEP)
        made.append(pool)
        return pool

    yield Clients(kind, EXPECT[kind], make)
    for pool in made:
        pool.close()
        if isinstance(pool, AiohttpUpstreamPool):
            await pool.wait_closed()


async def test_requests_reuse_one_kept_alive_connection(clients: Clients) -> None:
    async with scripted_server(echo_forever) as (port, connections):
        pool = clients.make(port)
        for _ in range(3):
            assert (await pool.post(b"/infer", [], [BODY], timeout_s=5)).status == 200
        assert len(connections) == 1
        assert pool.idle_count == 1


async def test_answer_is_read_whole_with_only_kept_headers(clients: Clients) -> None:
    async with scripted_server(echo_forever) as (port, _):
        pool = clients.make(port)
        parts = [BODY[:1000], memoryview(BODY)[1000:], bytearray(b"tail")]
        response = await pool.post(b"/infer", [(b"content-type", b"x")], parts, timeout_s=5)
        assert bytes(response.body) == BODY + b"tail"
        assert sorted(response.headers) == [
            (b"content-type", b"application/octet-stream"),
            (b"inference-header-content-length", b"7"),
        ]


async def test_chunked_answer_is_reassembled(clients: Clients) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with scripted_server(chunked) as (port, _):
        response = await clients.make(port).post(b"/infer", [], [b"q"], timeout_s=5)
        assert bytes(response.body) == b"hello world"


async def test_connection_refused_is_a_retryable_connect_error(clients: Clients) -> None:
    pool = clients.make(free_port())
    with pytest.raises(UpstreamConnectError, match=r"connect to 127\.0\.0\.1"):
        await pool.post(b"/infer", [], [b"q"], timeout_s=5)


async def test_close_before_any_answer_byte_is_a_retryable_connect_error(
    clients: Clients,
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with scripted_server(hang_up) as (port, connections):
        pool = clients.make(port)
        with pytest.raises(UpstreamConnectError, match="before any response"):
            await pool.post(b"/infer", [], [b"q"], timeout_s=5)
        assert len(connections) == clients.expect.connections_after_close_before_answer
        assert pool.idle_count == 0


async def test_close_mid_answer_is_a_broken_error_not_retried(clients: Clients) -> None:
    async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"x" * 100)[:-50])
        await writer.drain()

    async with scripted_server(half_answer) as (port, connections):
        pool = clients.make(port)
        with pytest.raises(UpstreamBrokenError, match="mid-response"):
            await pool.post(b"/infer", [], [b"q"], timeout_s=5)
        assert len(connections) == 1  # not retried on a fresh connection either
        assert pool.idle_count == 0


async def test_no_answer_within_the_timeout_raises_timeout_and_drops_the_connection(
    clients: Clients,
) -> None:
    received = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        received.set()
        await reader.read()

    async with scripted_server(silent) as (port, _):
        pool = clients.make(port)
        loop = asyncio.get_running_loop()
        started_s = loop.time()
        with pytest.raises(TimeoutError):
            await pool.post(b"/infer", [], [b"q"], timeout_s=0.2)
        assert received.is_set(), "the timeout struck while waiting for the answer"
        # Not before the timeout: a timer never fires early (10 ms of slack for a millisecond
        # clock), so this cannot flake. Never answering at all is caught by the timeout mark.
        assert loop.time() - started_s >= 0.19
        assert pool.idle_count == 0


async def test_connection_close_answer_is_not_kept(clients: Clients) -> None:
    async def close_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok", b"connection: close\r\n"))
        await writer.drain()
        await reader.read()

    async with scripted_server(close_answer) as (port, _):
        pool = clients.make(port)
        assert (await pool.post(b"/a", [], [b"q"], timeout_s=5)).status == 200
        assert pool.idle_count == 0


async def test_reused_connection_dropped_before_answering_is_retried_once_fresh(
    clients: Clients,
) -> None:
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
        pool = clients.make(port)
        for _ in range(2):
            assert bytes((await pool.post(b"/a", [], [b"q"], timeout_s=5)).body) == b"ok"
        assert len(connections) == 2 and len(served) == 2


async def test_lean_kept_alive_connection_closed_by_the_server_is_replaced_transparently() -> None:
    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))
        await writer.drain()
        # closes after answering, like a pod whose keep-alive ran out

    async with scripted_server(one_answer_then_close) as (port, connections):
        pool = UpstreamPool("127.0.0.1", port, KEEP)
        assert bytes((await pool.post(b"/a", [], [b"q"], timeout_s=5)).body) == b"ok"
        # The close reaches the client while the connection is idle in the pool (private: the
        # pool offers no view of its idle connections' state).
        await eventually(lambda: pool.idle_count == 1 and pool._idle[0].closed)
        assert bytes((await pool.post(b"/a", [], [b"q"], timeout_s=5)).body) == b"ok"
        assert len(connections) == 2
        pool.close()


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
