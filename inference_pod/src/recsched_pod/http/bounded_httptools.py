"""uvicorn's own httptools protocol with the bounds it lacks, for the router and the pods.

uvicorn parses requests with httptools and hands bodies to the app as they arrive, but it bounds
neither how long a request may take to arrive nor how large its head or body may be: a client
that announces a body and never sends it holds its connection for as long as it likes. This
subclass adds, per request:

- a read timeout: a request not received whole (head and body) within `read_timeout_s` of its
  first byte is answered 408 and the connection closed;
- a head limit (431) and a body limit taken from the declared Content-Length (413, before a byte
  of the body is read; chunked bodies are counted by the apps' own readers).

A 413 is an answer on a kept-alive connection: uvicorn drops the body that still arrives (it does
so for any early answer), so a client that sends its whole body before reading, as most do, reads
the 413 instead of a connection reset. The drop lasts at most one more read timeout after the
request's own, then the connection is closed. Refusals use the pods' error shape
(`{"error": ...}`), so clients parse one format.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
READ_TIMEOUT_S = 10.0  # the default of `PodSettings.request_read_timeout_s`
# Above any valid query (the app's own limit decides with its message).
MAX_BODY_BYTES = 256 * 1024 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """One client connection; the constructor has the signature uvicorn calls, plus the bounds."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._max_body_bytes = max_body_bytes
        self._read_timeout_s = read_timeout_s
        self._read_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._refusal: tuple[HTTPStatus, str] | None = None  # raised inside the parser
        self._draining = False  # answered early; the rest of the body is being dropped

    # httptools callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._draining = False
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = self.loop.call_later(self._read_timeout_s, self._read_timed_out)

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refusal = (
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"head over {MAX_HEAD_BYTES} bytes",
            )
            raise _Refused  # the parser stops; `send_400_response` answers with the refusal
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        declared = _content_length(self.headers)
        if declared is None or declared <= self._max_body_bytes:
            super().on_headers_complete()
            return
        # Answered by a one-line app in place of the real one, before any body byte is read.
        message = f"body of {declared} bytes exceeds the limit of {self._max_body_bytes}"
        app, self.app = self.app, _Refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, message)
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        super().connection_lost(exc)

    # uvicorn's answer to a request the parser rejected
    def send_400_response(self, msg: str) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is None:
            super().send_400_response(msg)
            return
        self._answer_and_close(*refusal)

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        current = cycle is not None and cycle.scope is self.scope
        if current and cycle.response_complete and not self._draining:
            # Answered early (413): the body still on its way is dropped for one more timeout.
            self._draining = True
            self._read_timer = self.loop.call_later(self._read_timeout_s, self._read_timed_out)
            return
        if current and cycle.response_started:
            self.transport.close()
            return
        self._answer_and_close(
            HTTPStatus.REQUEST_TIMEOUT,
            f"request not received whole within {self._read_timeout_s:g} s",
        )

    def _answer_and_close(self, status: HTTPStatus, message: str) -> None:
        body = orjson.dumps({"error": message})
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, status.phrase.encode(), len(body), body)
        )
        self.transport.close()


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a request that is being refused."""


class _Refusal:
    """An ASGI app that answers every request with one error, without reading its body."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        self._status = int(status)
        self._body = orjson.dumps({"error": message})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(self._body)),
        ]
        await send({"type": "http.response.start", "status": self._status, "headers": headers})
        await send({"type": "http.response.body", "body": self._body})


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None
