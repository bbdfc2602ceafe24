"""The router's infer path at the ASGI level: the body kept as the chunks the server delivered,
the JSON header parsed from the first of them, and the pod's answer sent back as it came.

The router forwards bodies unchanged, so it never needs them in one piece: joining or copying a
352 KiB binary query costs more CPU than routing it. The same limits and messages as the pod's
`read_body` and `split_body` apply, so a client cannot tell where a query was refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

from recsched_pod.errors import InvalidInputError, PayloadTooLargeError
from recsched_pod.http.protocol import HEADER_LENGTH, check_header, split_body
from recsched_pod.models.spec import ModelInputSpec
from recsched_pod.router.upstream_client import BodyPart, UpstreamResponse

HEADER_BYTES = HEADER_LENGTH.encode("latin-1")
# Binary-request headers are a few hundred bytes; longer ones are checked but not remembered.
_MAX_REMEMBERED_HEADER_BYTES = 4096
_REMEMBERED_HEADERS = 1024

InferEndpoint = Callable[[str, Scope, Receive, Send], Awaitable[None]]


@dataclass
class ReceivedBody:
    parts: list[BodyPart] = field(default_factory=list)
    length: int = 0


async def receive_body(
    receive: Receive, declared_length: bytes | None, limit_bytes: int
) -> ReceivedBody | None:
    """The request body as received (None if the client disconnected), refused with 413 as soon
    as it is known to exceed `limit_bytes` and with 400 if it disagrees with its Content-Length."""
    expected: int | None = None
    if declared_length is not None and declared_length.isdigit():
        expected = int(declared_length)
        if expected > limit_bytes:
            raise PayloadTooLargeError(
                f"body of {expected} bytes exceeds the limit of {limit_bytes}"
            )
    body = ReceivedBody()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        if chunk:
            body.parts.append(chunk)
            body.length += len(chunk)
            if expected is not None and body.length > expected:
                raise InvalidInputError(f"body is longer than its Content-Length {expected}")
            if expected is None and body.length > limit_bytes:
                raise PayloadTooLargeError(f"body exceeds the limit of {limit_bytes} bytes")
        if not message.get("more_body", False):
            break
    if expected is not None and body.length != expected:
        raise InvalidInputError(f"body ended after {body.length} of {expected} bytes")
    return body


def split_header_from_parts(
    body: ReceivedBody, header_length: bytes | None
) -> tuple[dict[str, Any], int]:
    """The JSON header and the size of the binary part after it.

    In the usual case the header lies inside the first chunk and only that chunk is looked at;
    otherwise (plain JSON bodies, odd headers) the chunks are joined and `split_body` decides, so
    every error reads as the pod's.
    """
    if header_length is not None and header_length.isdigit() and body.parts:
        length = int(header_length)
        first = body.parts[0]
        if length <= len(first):
            header, _ = split_body(memoryview(first)[:length], str(length))
            return header, body.length - length
    joined = body.parts[0] if len(body.parts) == 1 else b"".join(body.parts)
    text = None if header_length is None else header_length.decode("latin-1")
    header, binary_part = split_body(joined, text)
    return header, len(binary_part)


class QuerySizes:
    """N for each query, from its header, checked as the pod checks it.

    `check_header` is a pure function of the header's bytes and the binary part's size for a
    given model, and clients send the same few headers again and again (one per query size), so
    the router remembers the answer for headers it has already accepted: parsing and checking one
    costs more than forwarding the whole query. Only accepted headers are remembered; a header
    that fails is checked (and fails) every time.
    """

    def __init__(self, spec: ModelInputSpec, max_items: int) -> None:
        self._spec = spec
        self._max_items = max_items
        self._known: dict[tuple[bytes, int], int] = {}

    def items(self, body: ReceivedBody, header_length: bytes | None) -> int:
        if header_length is not None and header_length.isdigit() and body.parts:
            length = int(header_length)
            first = body.parts[0]
            if length <= min(len(first), _MAX_REMEMBERED_HEADER_BYTES):
                key = (bytes(memoryview(first)[:length]), body.length - length)
                items = self._known.get(key)
                if items is None:
                    header, _ = split_body(key[0], str(length))
                    items = check_header(header, key[1], self._spec, self._max_items).items
                    if len(self._known) >= _REMEMBERED_HEADERS:
                        self._known.clear()  # e.g. headers that carry a per-query id
                    self._known[key] = items
                return items
        header, binary_bytes = split_header_from_parts(body, header_length)
        return check_header(header, binary_bytes, self._spec, self._max_items).items


async def send_upstream_response(send: Send, response: UpstreamResponse) -> None:
    """The pod's status, the headers the router passes on, and its body."""
    headers = [(b"content-length", b"%d" % len(response.body)), *response.headers]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": bytes(response.body)})
