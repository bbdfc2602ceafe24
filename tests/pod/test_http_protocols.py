"""The HTTP/1.1 server protocols under uvicorn (`settings.http_server`: the hand-written `lean`
and uvicorn's httptools one with bounds added) serving small ASGI apps on loopback: kept-alive and
pipelined requests, interim 100s, refusals, slow senders timed out (408) and oversize ones refused
(413) without a connection reset; and `lean`'s own promises: a body in one message, chunked bodies
reassembled, and buffer reuse that never overwrites a body the app kept."""

from __future__ import annotations

import functools
import hashlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from recsched_pod.http.bounded_httptools import BoundedHttpToolsProtocol
from recsched_pod.http.lean_http import LeanHttpProtocol
from support.asgi_server import serve_app

pytestmark = pytest.mark.timeout(60)
INTERIM_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
PROTOCOLS = {"lean": LeanHttpProtocol, "httptools": BoundedHttpToolsProtocol}


class EchoApp:
    """Answers with the body's length and SHA-256 and how many messages it came in; keeps every
    body it was given, to show that later requests never overwrite them."""

    def __init__(self) -> None:
        self.kept: list[Any] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            for reply in ("lifespan.startup.complete", "lifespan.shutdown.complete"):
                await receive()
                await send({"type": reply})
            return
        if scope["path"] == "/boom":
            raise RuntimeError("app failure")
        messages, body = 0, b""
        while True:
            message = await receive()
            messages += 1
            body += bytes(message.get("body", b""))
            if scope["path"] == "/keep":
                self.kept.append(message["body"])
            if not message.get("more_body", False):
                break
        text = f"{scope['method']} {len(body)} {hashlib.sha256(body).hexdigest()} {messages}"
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(text))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": text.encode()})


@pytest.fixture(scope="module", params=sorted(PROTOCOLS))
def echo(request: pytest.FixtureRequest) -> Iterator[tuple[str, EchoApp]]:
    app = EchoApp()
    with serve_app(app, "/ready", http=PROTOCOLS[request.param]) as url:
        yield url, app


@pytest.fixture(scope="module")
def lean_echo() -> Iterator[tuple[str, EchoApp]]:
    app = EchoApp()
    with serve_app(app, "/ready", http=LeanHttpProtocol) as url:
        yield url, app


def raw_exchange(url: str, request: bytes, answers: int = 1) -> bytes:
    """Send raw bytes on one connection and read until `answers` complete responses arrived."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        return read_answers(connection, answers)


def read_answers(connection: socket.socket, answers: int = 1) -> bytes:
    """Read until `answers` complete responses arrived (or the server closed)."""
    received = b""
    while not _complete(received.replace(INTERIM_100, b""), answers):
        chunk = connection.recv(65536)  # a reset raises here and fails the test
        if not chunk:
            break
        received += chunk
    return received


def _complete(received: bytes, answers: int) -> bool:
    """Whether `answers` final responses arrived, the last with all its Content-Length body."""
    if received.count(b"HTTP/1.1 ") < answers:
        return False
    last = received.rsplit(b"HTTP/1.1 ", 1)[1]
    head, separator, body = last.partition(b"\r\n\r\n")
    if not separator:
        return False
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return len(body) >= length


def test_large_body_arrives_whole(echo: tuple[str, EchoApp]) -> None:
    url, _ = echo
    body = bytes(range(256)) * 4096  # 1 MiB, far more than one read
    response = httpx.post(url + "/echo", content=body)
    assert response.text.rsplit(" ", 1)[0] == f"POST {len(body)} {hashlib.sha256(body).hexdigest()}"


def test_lean_delivers_a_large_body_in_one_message(lean_echo: tuple[str, EchoApp]) -> None:
    url, _ = lean_echo
    body = bytes(range(256)) * 4096
    assert httpx.post(url + "/echo", content=body).text.endswith(" 1")


def test_lean_reassembles_a_chunked_body_into_one_message(lean_echo: tuple[str, EchoApp]) -> None:
    url, _ = lean_echo
    response = httpx.post(url + "/echo", content=iter([b"abc", b"defg"]))
    assert response.text == f"POST 7 {hashlib.sha256(b'abcdefg').hexdigest()} 1"


def test_kept_alive_connection_serves_requests_in_turn(echo: tuple[str, EchoApp]) -> None:
    url, _ = echo
    with httpx.Client() as client:
        texts = [client.post(url + "/echo", content=b"x" * size).text for size in (10, 500_000, 3)]
    assert [text.split()[1] for text in texts] == ["10", "500000", "3"]


def test_pipelined_requests_are_answered_in_order(echo: tuple[str, EchoApp]) -> None:
    url, _ = echo
    request = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s"
    raw = raw_exchange(url, request % (2, b"ab") + request % (4, b"abcd"), answers=2)
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in raw.split(b"HTTP/1.1 200 OK")[1:]]
    assert [body.split()[1] for body in bodies] == [b"2", b"4"]


def test_expect_100_continue_gets_an_interim_answer(echo: tuple[str, EchoApp]) -> None:
    url, _ = echo
    request = b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n"
    raw = raw_exchange(url, request + b"abc")
    assert raw.startswith(INTERIM_100 + b"HTTP/1.1 200 OK")


def test_http_1_0_request_gets_its_answer_and_the_connection_closes(
    echo: tuple[str, EchoApp],
) -> None:
    url, _ = echo
    raw = raw_exchange(url, b"GET /echo HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in raw


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n", b"431"),
    ],
)
def test_bad_requests_are_refused_and_the_connection_closed(
    echo: tuple[str, EchoApp], request_bytes: bytes, status: bytes
) -> None:
    url, _ = echo
    raw = raw_exchange(url, request_bytes)
    assert raw.startswith(b"HTTP/1.1 " + status) and b"connection: close" in raw


def test_app_exception_is_a_500_and_the_server_keeps_serving(echo: tuple[str, EchoApp]) -> None:
    url, _ = echo
    assert httpx.get(url + "/boom").status_code == 500
    assert httpx.get(url + "/echo").status_code == 200


def test_lean_never_overwrites_a_body_the_app_kept_with_the_next_request(
    lean_echo: tuple[str, EchoApp],
) -> None:
    url, app = lean_echo
    with httpx.Client() as client:  # one connection: the buffer reuse would apply
        for fill in (b"a", b"b", b"c"):
            assert client.post(url + "/keep", content=fill * 100_000).is_success
    kept = [bytes(body) for body in app.kept[-3:]]
    assert [body[:1] + body[-1:] for body in kept] == [b"aa", b"bb", b"cc"]


@pytest.mark.parametrize("http_server", sorted(PROTOCOLS))
def test_body_above_the_roles_limit_is_refused_before_reading_in_the_pods_words(
    tmp_path: Any, http_server: str
) -> None:
    import orjson

    from recsched_pod.app_factory import http_protocol_for
    from recsched_pod.http.shell import max_body_bytes
    from recsched_pod.models import model_spec
    from support.pod_fixtures import pod_settings

    settings = pod_settings(
        tmp_path, role="router", cpu_endpoints="127.0.0.1:9", http_server=http_server
    )
    limit = max_body_bytes(model_spec("rmc1", scale=settings.scale), settings.max_query_items)
    protocol = http_protocol_for(settings)
    assert protocol.func is PROTOCOLS[http_server]
    with serve_app(EchoApp(), "/ready", http=protocol) as url:
        # No body follows: the refusal must come from the declared length alone.
        raw = raw_exchange(url, b"POST /echo HTTP/1.1\r\ncontent-length: %d\r\n\r\n" % (limit + 1))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and b"application/json" in head
    assert orjson.loads(body) == {
        "error": f"body of {limit + 1} bytes exceeds the limit of {limit}"
    }


def read_until_closed(connection: socket.socket, timeout_s: float) -> bytes:
    """Everything the server sends until it closes; fails if it is still open after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    received = b""
    while True:
        remaining_s = deadline - time.monotonic()
        assert remaining_s > 0, f"still open after {timeout_s} s; received {received[:200]!r}"
        connection.settimeout(remaining_s)
        try:
            chunk = connection.recv(65536)
        except TimeoutError:
            continue  # the assertion above reports it
        if not chunk:
            return received
        received += chunk


@pytest.fixture(scope="module", params=sorted(PROTOCOLS))
def strict_echo(request: pytest.FixtureRequest) -> Iterator[str]:
    """The echo app behind a 0.2 s read timeout and a 1 MiB body limit."""
    protocol = functools.partial(PROTOCOLS[request.param], max_body_bytes=2**20, read_timeout_s=0.2)
    with serve_app(EchoApp(), "/ready", http=protocol) as url:
        yield url


@pytest.mark.parametrize(
    "partial_request",
    [
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n" + b"a" * 10,
        b"POST /echo HTTP/1.1\r\nhost: x\r\n",  # the head never ends
    ],
    ids=["body-never-sent", "head-never-ended"],
)
def test_stalled_sender_gets_408_and_the_connection_closes(
    strict_echo: str, partial_request: bytes
) -> None:
    host, port = strict_echo.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(partial_request)
        # 408 within two read timeouts (0.4 s); 10 s only bounds a failing run.
        raw = read_until_closed(connection, timeout_s=10)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head
    assert b"within 0.2 s" in body


def test_request_within_the_read_timeout_is_served(strict_echo: str) -> None:
    raw = raw_exchange(
        strict_echo, b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nab"
    )
    assert raw.startswith(b"HTTP/1.1 200 OK")


def test_oversize_body_sent_whole_gets_413_not_a_reset(strict_echo: str) -> None:
    """A client that sends its 64 MiB body before reading (as most do) must read the 413."""
    host, port = strict_echo.removeprefix("http://").split(":")
    size = 64 * 2**20
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % size)
        chunk = b"z" * 2**20
        for _ in range(size // len(chunk)):
            connection.sendall(chunk)  # a reset here, or in the read below, fails the test
        raw = read_answers(connection)
    assert raw.startswith(b"HTTP/1.1 413") and b"exceeds the limit" in raw


def test_http_implementations_come_from_the_flags_and_default_to_lean() -> None:
    from recsched_pod.cli import settings_from_args

    chosen, _ = settings_from_args(["--http-server", "httptools", "--upstream-client", "aiohttp"])
    assert (chosen.http_server, chosen.upstream_client) == ("httptools", "aiohttp")
    default, _ = settings_from_args([])
    assert (default.http_server, default.upstream_client) == ("lean", "lean")
    with pytest.raises(SystemExit):
        settings_from_args(["--http-server", "h11"])
