"""HTTP clients that POST pre-encoded infer bodies and classify the outcome (I/O).

Two interchangeable implementations over one keep-alive connection pool each. `aiohttp` is the
default because it is needed to reach the rate: on this machine one process with aiohttp keeps
~1,300 QPS with a send lag p99 under 10 ms, while httpx's async client stops keeping up between
65 and 180 QPS and then collapses into timeouts (docs/benchmarks/loadtest.md). `httpx` stays as
an independent second client for cross-checks at low rates.
Both map every outcome to the error kinds of `stats`, so a failure is never an exception that could
escape accounting. Per-request deadlines are enforced by the driver, not here.

Idle keep-alive connections are dropped after `KEEPALIVE_S`, below uvicorn's 5 s server-side
idle timeout: otherwise, at low rates, a query can be written on a connection the server is
closing at that very moment and come back as a spurious `connection` error (seen once in the
first-use study before this bound existed). No query is ever retried: that would hide errors and
bend the open-loop schedule.
"""

from __future__ import annotations

from typing import Protocol

import aiohttp
import httpx

from recsched_loadtest.encoding import HEADER_LENGTH, check_infer_response

CLIENT_KINDS = ("aiohttp", "httpx")
KEEPALIVE_S = 2.0


class InferTransport(Protocol):
    async def infer(
        self, body: bytes, header_length: int | None, content_type: str, expected_items: int
    ) -> str | None:
        """POST one query; None when it succeeded, else the error kind."""
        ...

    async def aclose(self) -> None: ...


def _request_headers(header_length: int | None, content_type: str) -> dict[str, str]:
    headers = {"Content-Type": content_type}
    if header_length is not None:
        headers[HEADER_LENGTH] = str(header_length)
    return headers


class HttpxTransport:
    def __init__(self, base_url: str, model: str, max_connections: int) -> None:
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=KEEPALIVE_S,
        )
        self._client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=None)
        self._path = f"/v2/models/{model}/infer"

    async def infer(
        self, body: bytes, header_length: int | None, content_type: str, expected_items: int
    ) -> str | None:
        try:
            response = await self._client.post(
                self._path, content=body, headers=_request_headers(header_length, content_type)
            )
        except httpx.TimeoutException:
            return "timeout"
        except httpx.TransportError:
            return "connection"
        return check_infer_response(
            response.status_code,
            response.headers.get(HEADER_LENGTH),
            response.content,
            expected_items,
        )

    async def aclose(self) -> None:
        await self._client.aclose()


class AiohttpTransport:
    def __init__(self, base_url: str, model: str, max_connections: int) -> None:
        self._base_url = base_url
        self._url = f"{base_url.rstrip('/')}/v2/models/{model}/infer"
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession must be made inside the running event loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_S
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None)
            )
        return self._session

    async def infer(
        self, body: bytes, header_length: int | None, content_type: str, expected_items: int
    ) -> str | None:
        try:
            async with self._get_session().post(
                self._url, data=body, headers=_request_headers(header_length, content_type)
            ) as response:
                content = await response.read()
                return check_infer_response(
                    response.status, response.headers.get(HEADER_LENGTH), content, expected_items
                )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return "timeout"
        except aiohttp.ClientError:
            return "connection"

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def make_transport(kind: str, base_url: str, model: str, max_connections: int) -> InferTransport:
    if kind == "httpx":
        return HttpxTransport(base_url, model, max_connections)
    if kind == "aiohttp":
        return AiohttpTransport(base_url, model, max_connections)
    raise ValueError(f"unknown client {kind!r}; use one of {CLIENT_KINDS}")
