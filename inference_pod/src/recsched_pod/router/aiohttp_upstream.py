"""The router's client to pods on aiohttp: the same contract as `upstream_client.UpstreamPool`.

One `aiohttp.ClientSession` per endpoint keeps connections alive (closed after `KEEPALIVE_S`
idle, below uvicorn's 5 s). The errors keep their meaning for the router's retry rule:
`UpstreamConnectError` when no answer arrived (refused, reset or closed before the answer's
head; a kept-alive connection found closed is retried once first, as that says nothing about the
endpoint), `UpstreamBrokenError` when the answer's body was cut off (never retried), and
`TimeoutError` when no whole answer came in time. aiohttp does not say how many bytes of a head
arrived before a close, so a pod that closes part-way through its head counts as "no answer".
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp

from recsched_pod.router.upstream_client import (
    KEEPALIVE_S,
    BodyPart,
    UpstreamBrokenError,
    UpstreamConnectError,
    UpstreamResponse,
)

# aiohttp would add these to every request; the pods read none of them.
_SKIPPED_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class AiohttpUpstreamPool:
    """Kept-alive connections to one endpoint (`host`, `port`) through aiohttp."""

    def __init__(self, host: str, port: int, keep_headers: Sequence[bytes]) -> None:
        self.host = host
        self.port = port
        self._base_url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        self._keep_headers = frozenset(name.decode("latin-1").lower() for name in keep_headers)
        self._session: aiohttp.ClientSession | None = None
        self._closing: asyncio.Task[None] | None = None

    @property
    def idle_count(self) -> int:
        if self._session is None or self._session.connector is None:
            return 0
        return sum(len(idle) for idle in self._session.connector._conns.values())

    async def post(
        self,
        path: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body_parts: Sequence[BodyPart],
        timeout_s: float,
    ) -> UpstreamResponse:
        """`POST path` with the body `body_parts` (joined if there are several); raises the
        errors described in the module docstring."""
        session = self._session
        if session is None:
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S),
                timeout=aiohttp.ClientTimeout(total=None),  # the caller's deadline bounds it
                skip_auto_headers=_SKIPPED_AUTO_HEADERS,
                auto_decompress=False,
            )
        url = self._base_url + path.decode("latin-1")
        request_headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in headers
        }
        body = body_parts[0] if len(body_parts) == 1 else b"".join(body_parts)
        async with asyncio.timeout(timeout_s):
            for attempt in range(2):
                try:
                    return await self._exchange(session, url, request_headers, body)
                except aiohttp.ClientConnectorError as error:
                    raise UpstreamConnectError(
                        f"connect to {self.host}:{self.port}: {error}"
                    ) from error
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
                    if attempt == 1:  # a fresh connection failed too: the endpoint is gone
                        raise UpstreamConnectError(
                            f"connection closed before any response ({error})"
                        ) from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: dict[str, str],
        body: BodyPart,
    ) -> UpstreamResponse:
        async with session.post(url, data=body, headers=headers) as response:
            try:
                content = await response.read()
            except (
                aiohttp.ClientPayloadError,
                aiohttp.ClientOSError,
                aiohttp.ServerDisconnectedError,
            ) as error:
                raise UpstreamBrokenError(f"connection closed mid-response ({error})") from error
            kept = [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in response.headers.items()
                if name.lower() in self._keep_headers
            ]
            return UpstreamResponse(response.status, kept, content)

    def close(self) -> None:
        """Close the kept-alive connections (in a task: aiohttp closes asynchronously)."""
        session, self._session = self._session, None
        if session is not None:
            self._closing = asyncio.get_running_loop().create_task(session.close())

    async def wait_closed(self) -> None:
        if self._closing is not None:
            await self._closing
