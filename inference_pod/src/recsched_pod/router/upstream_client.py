"""The router's HTTP/1.1 client for forwarding queries to pods: persistent connections, no copies.

A general client costs the router CPU per query for what the infer path does not need (URL
building, header objects, timeout contexts, a copy of the body): measured in one interleaved run
(docs/benchmarks/http_layer.md), aiohttp in its place added 0.57 ms (0.44-0.74) of router CPU to
the 0.92 ms of a 64-item query (`PodSettings.upstream_client = "aiohttp"`, `aiohttp_upstream`, is
kept for that comparison and as a fallback).

This one does only what the infer path needs: one `POST` with a body written straight from the
caller's buffer (`transport.writelines`, no join), a response parsed by `httptools` into one
buffer, and a small pool of kept-alive connections per endpoint.

Errors say whether retrying elsewhere is safe. `UpstreamConnectError`: no byte of a response
arrived (refused, reset, closed), so the pod did not deliver work and the query can go to another
endpoint. `UpstreamBrokenError`: the pod started answering and then went away; never retried.
`TimeoutError`: no complete answer in time. A kept-alive connection that the pod closed while idle
fails like a connect error; the client retries such a stale connection once on a fresh one before
reporting it, as that says nothing about the endpoint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import cast

import httptools

# Below uvicorn's default 5 s keep-alive, so the client rarely writes on a connection a pod closes.
KEEPALIVE_S = 4.0
_MAX_IDLE_PER_ENDPOINT = 64
BodyPart = bytes | bytearray | memoryview


class UpstreamConnectError(ConnectionError):
    """No response byte arrived: connecting failed, or the connection was closed or reset first."""


class UpstreamBrokenError(ConnectionError):
    """The upstream closed the connection part-way through its response."""


class UpstreamResponse:
    """The status, the kept headers (lower-case names) and the body of one answer.

    A plain slotted class: a frozen dataclass costs microseconds per query to build."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes | bytearray
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection that carries one request at a time."""

    def __init__(self, keep_headers: frozenset[bytes]) -> None:
        self._keep_headers = keep_headers
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since_s = 0.0
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._started = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()
        self._filled = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(UpstreamBrokenError(f"bad HTTP response: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._started:
            self._fail(UpstreamBrokenError(f"connection closed mid-response ({exc or 'EOF'})"))
        else:
            self._fail(
                UpstreamConnectError(f"connection closed before any response ({exc or 'EOF'})")
            )

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self._body = bytearray(int(value))  # filled in place by on_body
        if name in self._keep_headers:
            self._headers.append((name, value))

    def on_body(self, data: bytes) -> None:
        end = self._filled + len(data)
        if end <= len(self._body):
            self._body[self._filled : end] = data
        else:  # chunked, or more than announced (the parser rejects the latter)
            self._body[self._filled :] = data
        self._filled = end

    def on_message_complete(self) -> None:
        response = UpstreamResponse(self._parser.get_status_code(), self._headers, self._body)
        if not self._parser.should_keep_alive():
            self.close()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    # the client side
    def send(self, head: bytes, body_parts: Sequence[BodyPart]) -> asyncio.Future[UpstreamResponse]:
        assert self.transport is not None
        self._started = False
        self._headers = []
        self._body = bytearray()
        self._filled = 0
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.writelines((head, *body_parts))
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if not self.closed:
            self.close()


class UpstreamPool:
    """Kept-alive connections to one endpoint (`host`, `port`); one request per connection."""

    def __init__(self, host: str, port: int, keep_headers: Sequence[bytes]) -> None:
        self.host = host
        self.port = port
        self._host_header = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self._head_start = f"HTTP/1.1\r\nhost: {self._host_header}\r\ncontent-length: ".encode()
        self._keep_headers = frozenset(name.lower() for name in keep_headers)
        self._idle: list[_Connection] = []

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    async def post(
        self,
        path: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body_parts: Sequence[BodyPart],
        timeout_s: float,
    ) -> UpstreamResponse:
        """`POST path` with the body `body_parts` (written as they are, not joined); raises the
        errors described in the module docstring."""
        length = sum(memoryview(part).nbytes for part in body_parts)
        head = self._request_head(path, headers, length)
        loop = asyncio.get_running_loop()
        deadline_s = loop.time() + timeout_s
        connection = self._take_idle()
        if connection is not None:
            try:
                return await self._exchange(connection, head, body_parts, deadline_s)
            except UpstreamConnectError:
                pass  # stale: the pod closed it while idle; a fresh connection decides
        connection = await self._connect(deadline_s)
        return await self._exchange(connection, head, body_parts, deadline_s)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    def _request_head(
        self, path: bytes, headers: Sequence[tuple[bytes, bytes]], length: int
    ) -> bytes:
        parts = [b"POST ", path, b" ", self._head_start, b"%d\r\n" % length]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def _take_idle(self) -> _Connection | None:
        now_s = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now_s - connection.idle_since_s < KEEPALIVE_S:
                return connection
            connection.close()
        return None

    async def _connect(self, deadline_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline_s):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self._keep_headers), self.host, self.port
                )
        except OSError as error:
            raise UpstreamConnectError(f"connect to {self._host_header}: {error}") from error
        return connection

    async def _exchange(
        self,
        connection: _Connection,
        head: bytes,
        body_parts: Sequence[BodyPart],
        deadline_s: float,
    ) -> UpstreamResponse:
        waiter = connection.send(head, body_parts)
        loop = asyncio.get_running_loop()
        timer = loop.call_at(deadline_s, _expire, waiter)
        try:
            response = await waiter
        except BaseException:
            connection.close()  # a half-finished exchange leaves the connection unusable
            raise
        finally:
            timer.cancel()
        if not connection.closed:
            connection.idle_since_s = time.monotonic()
            if len(self._idle) < _MAX_IDLE_PER_ENDPOINT:
                self._idle.append(connection)
            else:
                connection.close()
        return response


def _expire(waiter: asyncio.Future[UpstreamResponse]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
