"""One buffered HTTP/1.1 response for `lean_http`: collected whole from ASGI messages, then
encoded into as few writes as possible (one when small). Kept apart from the connection protocol
so that file stays about reading requests; the encoding is the write half.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson


class BufferedResponse:
    """One ASGI response, collected whole."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.started = False
        self.complete = False

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and not self.started:
            self.started = True
            self.status = int(message["status"])
            self.headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body" and self.started and not self.complete:
            body = message.get("body", b"")
            if body:
                self.body.append(body)
            self.complete = not message.get("more_body", False)
        else:
            raise RuntimeError(f"unexpected ASGI message {message['type']!r}")

    def set_error(self, status: HTTPStatus, message: str = "") -> None:
        self.status = int(status)
        # The pods' error shape (`errors.error_response`), so clients parse one format.
        self.headers = [(b"content-type", b"application/json")]
        self.body = [orjson.dumps({"error": message or status.phrase})]
        self.complete = True

    def encode(self, keep_alive: bool) -> list[bytes]:
        length = len(self.body[0]) if len(self.body) == 1 else sum(map(len, self.body))
        lines = [_status_line(self.status)]
        for name, value in self.headers:
            if name.lower() not in _HEADERS_SET_HERE:
                lines += (name, b": ", value, b"\r\n")
        lines.append(b"content-length: %d\r\n" % length)
        if not keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        head = b"".join(lines)
        if length < 16 * 1024:  # one small write beats a vectored one
            return [head + b"".join(self.body)]
        return [head, *self.body]


_HEADERS_SET_HERE = frozenset((b"content-length", b"transfer-encoding", b"connection"))
_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase.encode()
        except ValueError:
            phrase = b""
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (status, phrase)
    return line
