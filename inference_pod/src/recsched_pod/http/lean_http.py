"""A lean HTTP/1.1 server protocol for the router and the pods, plugged into uvicorn (`http=`).

uvicorn's own protocols copy a request body three times on its way to the app (each read into a
new `bytes`, appended to a buffer, copied again per ASGI message), pause and resume reading every
64 KiB, and write a response's head and body in two system calls. For the router, which only
passes 352 KiB queries on, that was most of its CPU per query; for a pod it was memory traffic
on the event loop's core that slowed the model worker on the other (docs/benchmarks/pod.md).
Measured against uvicorn's httptools protocol in one interleaved run (docs/benchmarks/http_layer.md)
the router spends 0.26 ms (0.19-0.31) less CPU per 352 KiB query with this one, 0.92 vs 1.11 ms;
the pod's gain there stayed inside the run-to-run spread. `PodSettings.http_server = "httptools"`
serves through uvicorn's protocol instead (`bounded_httptools`).

This protocol reads a body with a Content-Length straight into one buffer (`recv_into` via
`BufferedProtocol`; the last body's buffer is reused once nothing holds it), hands it to the app
as a single ASGI message, and writes each (buffered) response in one call.

It is still a plain ASGI server: uvicorn keeps the socket, lifespan, signals and graceful
shutdown; every route of the app is served through it. Limits: one request at a time per
connection (pipelined requests wait their turn), responses are buffered whole (neither the router
nor the pods stream), no WebSocket upgrade.

Slow and oversize senders. A request must arrive whole (head and body) within
`read_timeout_s` of its first byte, or it is answered 408 and the connection closed; the check
rides on the connection's one timer, so the answer comes between one and two timeouts after the
first byte. A refusal (408, 413, ...) is followed by a lingering close, as nginx does: our side
is shut for writing and whatever the client still sends is read and dropped until it closes or
another `read_timeout_s` passes. Closing at once with unread bytes made the kernel reset the
connection, and a client still sending a large body then saw the reset instead of the 413.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httptools

from recsched_pod.http.lean_http_response import BufferedResponse

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
READ_TIMEOUT_S = 10.0  # the default of `PodSettings.request_read_timeout_s`
_DISCARD_BUFFER_BYTES = 256 * 1024  # what a refused sender still sends is read into this, dropped
# Above any valid query (the app's own limit decides with its message); refused before allocating.
MAX_BODY_BYTES = 256 * 1024 * 1024
_READ_BUFFER_BYTES = 16 * 1024  # heads; large bodies bypass it (get_buffer)


@dataclass(slots=True)
class _Request:
    url: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    method: str = "GET"
    http_version: str = "1.1"
    keep_alive: bool = True
    expect_continue: bool = False
    body: bytearray = field(default_factory=bytearray)
    filled: int = 0


class LeanHttpProtocol(asyncio.BufferedProtocol):
    """One client connection; the constructor has the signature uvicorn calls."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self._app = config.loaded_app
        self._max_body_bytes = max_body_bytes
        self._read_timeout_s = read_timeout_s
        self._reading_since_s = 0.0  # when the request on its way began to arrive
        self._discarding_until_s: float | None = None  # set once refused: lingering close
        self._root_path: str = config.root_path
        self._keep_alive_s: float = config.timeout_keep_alive
        self._server_state = server_state
        self._app_state = app_state
        self._loop = _loop or asyncio.get_event_loop()
        self._read_buffer = bytearray(_READ_BUFFER_BYTES)
        self._parser = httptools.HttpRequestParser(self)
        self._current: _Request | None = None
        self._direct: _Request | None = None  # a body being read straight into its buffer
        self._ready: deque[_Request] = deque()
        self._busy = False
        self._paused = False
        self._closing = False
        self._head_bytes = 0
        self._headers: list[tuple[bytes, bytes]] = []  # the current request's
        self._keep_alive_timer: asyncio.TimerHandle | None = None
        self._idle_since_s: float | None = None  # None while a request is on its way or served
        self._spare_body: bytearray | None = None
        self._disconnected = asyncio.Event()
        self.transport: Any = None
        self._server: tuple[str, int] | None = None
        self._client: tuple[str, int] | None = None

    # asyncio.BufferedProtocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._server_state.connections.add(self)
        self._server = _address(transport.get_extra_info("sockname"))
        self._client = _address(transport.get_extra_info("peername"))
        self._idle_since_s = self._loop.time()
        self._keep_alive_timer = self._loop.call_later(self._timer_period_s(), self._check_idle)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._direct is not None:
            return memoryview(self._direct.body)[self._direct.filled :]
        return memoryview(self._read_buffer)

    def buffer_updated(self, nbytes: int) -> None:
        if self._discarding_until_s is not None:
            return  # refused: what still arrives is dropped
        self._idle_since_s = None
        direct = self._direct
        if direct is not None:
            direct.filled += nbytes
            if direct.filled == len(direct.body):
                self._direct = None
                self._parser = httptools.HttpRequestParser(self)  # it stopped mid-body
                self._request_complete(direct)
            return
        try:
            self._parser.feed_data(memoryview(self._read_buffer)[:nbytes])
        except httptools.HttpParserUpgrade:
            self._refuse(HTTPStatus.NOT_IMPLEMENTED, "protocol upgrades are not supported")
            return
        except httptools.HttpParserError as error:
            refusal = error.__context__
            if isinstance(refusal, _RequestRefused):  # raised by one of our callbacks
                self._refuse(refusal.status, refusal.message)
            else:
                self._refuse(HTTPStatus.BAD_REQUEST, f"invalid HTTP request: {error}")
            return
        if not self._busy:
            self._read_rest_of_body_directly()

    def eof_received(self) -> bool | None:
        return None  # close our side too (which also ends a lingering close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server_state.connections.discard(self)
        if self._keep_alive_timer is not None:
            self._keep_alive_timer.cancel()
        self._disconnected.set()

    # uvicorn's graceful shutdown
    def shutdown(self) -> None:
        self._closing = True
        if not self._busy:
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._reading_since_s = self._loop.time()
        self._current = _Request()
        self._headers = self._current.headers
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        assert self._current is not None
        self._current.url += url
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Called for every header of every request: kept to the bare minimum.
        self._head_bytes += len(name) + len(value)
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        request = self._current
        assert request is not None
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _RequestRefused(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"head over {MAX_HEAD_BYTES} bytes"
            )
        request.method = self._parser.get_method().decode("ascii")
        request.keep_alive = self._parser.should_keep_alive()
        if self._parser.get_http_version() == "1.0":
            request.http_version = "1.0"
        length = None
        for name, value in request.headers:
            if name == b"content-length" and value.isdigit():
                length = int(value)
            elif name == b"expect" and value.lower() == b"100-continue":
                request.expect_continue = True
        if length is not None:
            if length > self._max_body_bytes:  # refused before allocating, as `read_body` does
                raise _RequestRefused(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"body of {length} bytes exceeds the limit of {self._max_body_bytes}",
                )
            request.body = self._body_buffer(length)  # filled by on_body or by recv_into
        if request.expect_continue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, data: bytes) -> None:
        request = self._current
        assert request is not None
        end = request.filled + len(data)
        if end > self._max_body_bytes:
            raise _RequestRefused(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body exceeds the limit of {self._max_body_bytes} bytes",
            )
        request.body[request.filled : end] = data  # grows the buffer for chunked bodies
        request.filled = end

    def on_message_complete(self) -> None:
        request, self._current = self._current, None
        assert request is not None
        self._request_complete(request)

    # requests and responses
    def _body_buffer(self, length: int) -> bytearray:
        """A buffer for a body of `length` bytes, every one of which will be written.

        The last body's buffer is reused when nothing holds it any more, as CPython's reference
        count tells (this frame, the attribute, getrefcount's argument): allocating and zeroing
        352 KiB per query cost the router more than parsing its header.
        """
        spare = self._spare_body
        if spare is not None and len(spare) == length and sys.getrefcount(spare) == 3:
            return spare
        self._spare_body = bytearray(length)
        return self._spare_body

    def _request_complete(self, request: _Request) -> None:
        self._ready.append(request)
        if not self._busy:
            self._start_next()
        elif not self._paused:
            # A pipelined request waits for the one in progress; read no further until then.
            # (Pausing for every request would cost two system calls each.)
            self._paused = True
            self.transport.pause_reading()

    def _read_rest_of_body_directly(self) -> None:
        """Past a Content-Length request's head, read the rest of its body straight into its
        buffer: no parser, no copy. The parser is left mid-body and replaced when it is done."""
        current = self._current
        if current is not None and current.filled < len(current.body):
            self._direct, self._current = current, None

    def _start_next(self) -> None:
        if not self._ready:
            self._read_rest_of_body_directly()
            if self._paused:
                self._paused = False
                self._reading_since_s = self._loop.time()  # it could not arrive while paused
                self.transport.resume_reading()
            if self._current is None and self._direct is None:
                self._idle_since_s = self._loop.time()
            return
        self._busy = True
        request = self._ready.popleft()
        task = self._loop.create_task(self._serve(request))
        self._server_state.tasks.add(task)
        task.add_done_callback(self._server_state.tasks.discard)

    async def _serve(self, request: _Request) -> None:
        response = BufferedResponse()
        try:
            scope = self._scope(request)
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            response.set_error(HTTPStatus.BAD_REQUEST, "invalid request target")
        else:
            try:
                await self._app(scope, self._receiver(request), response.send)
            except Exception:
                logger.exception("exception in the ASGI app")
        if not response.complete:
            response.set_error(HTTPStatus.INTERNAL_SERVER_ERROR)
        keep_alive = request.keep_alive and not self._closing
        if self._disconnected.is_set() or self._discarding_until_s is not None:
            return  # gone, or refused meanwhile (a pipelined request): nothing more is written
        self.transport.writelines(response.encode(keep_alive))
        self._busy = False
        if not keep_alive:
            self.transport.close()
            return
        self._start_next()

    def _scope(self, request: _Request) -> dict[str, Any]:
        url = httptools.parse_url(request.url)
        raw_path: bytes = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version,
            "server": self._server,
            "client": self._client,
            "scheme": "http",
            "method": request.method,
            "root_path": self._root_path,
            "path": self._root_path + path,
            "raw_path": self._root_path.encode("ascii") + raw_path,
            "query_string": url.query or b"",
            "headers": request.headers,
            "state": self._app_state.copy(),
        }

    def _receiver(self, request: _Request) -> Any:
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                body = request.body if request.filled == len(request.body) else b""
                return {"type": "http.request", "body": body, "more_body": False}
            await self._disconnected.wait()
            return {"type": "http.disconnect"}

        return receive

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        """Answer `status` and close, lingering: see the module docstring."""
        response = BufferedResponse()
        response.set_error(status, message)
        self.transport.writelines(response.encode(keep_alive=False))
        self._current = self._direct = None
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._discarding_until_s = self._loop.time() + self._read_timeout_s
        self._read_buffer = bytearray(_DISCARD_BUFFER_BYTES)
        if self._paused:
            self._paused = False
            self.transport.resume_reading()

    def _timer_period_s(self) -> float:
        return min(self._keep_alive_s, self._read_timeout_s)

    def _check_idle(self) -> None:
        """Close the connection once idle for the keep-alive time, answer 408 to a request that
        has not arrived whole within the read timeout, end a lingering close. One timer per
        period, not one per request: re-arming a timer for each query is measurable at 200 QPS."""
        now_s = self._loop.time()
        wait_s = self._timer_period_s()
        if self._discarding_until_s is not None:
            if now_s >= self._discarding_until_s:
                self.transport.close()
                return
            wait_s = self._discarding_until_s - now_s
        elif self._idle_since_s is not None:
            idle_wait_s = self._idle_since_s + self._keep_alive_s - now_s
            if idle_wait_s <= 0:
                self.transport.close()
                return
            wait_s = min(idle_wait_s, wait_s)
        elif (self._current is not None or self._direct is not None) and not (
            self._busy or self._paused
        ):
            late_s = now_s - self._reading_since_s - self._read_timeout_s
            if late_s >= 0:
                self._refuse(
                    HTTPStatus.REQUEST_TIMEOUT,
                    f"request not received whole within {self._read_timeout_s:g} s",
                )
                wait_s = self._read_timeout_s
        self._keep_alive_timer = self._loop.call_later(wait_s, self._check_idle)


class _RequestRefused(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _address(value: object) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None
