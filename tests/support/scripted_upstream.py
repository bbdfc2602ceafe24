"""Scripted loopback HTTP servers for the router's upstream clients' tests: each connection runs
a handler that reads requests and writes answers byte for byte, so a test can answer in pieces,
cut an answer off, stay silent or close at any point."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
KEEP = (b"content-type", b"inference-header-content-length")
BODY = bytes(range(256)) * 1000  # 256,000 bytes: many TCP segments


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The request head and its Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


@asynccontextmanager
async def scripted_server(handler: Handler) -> AsyncIterator[tuple[int, list[int]]]:
    """A loopback server running `handler` per connection; yields its port and a list that
    gets one entry per accepted connection."""
    connections: list[int] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, connections


def answer(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nx-other: dropped\r\n"
        + extra
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


async def echo_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request with its own body, in pieces, on one kept-alive connection."""
    while True:
        _, body = await read_request(reader)
        response = answer(body, b"inference-header-content-length: 7\r\n")
        for start in range(0, len(response), 70_000):
            writer.write(response[start : start + 70_000])
            await writer.drain()
