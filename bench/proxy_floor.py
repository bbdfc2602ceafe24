"""What any Python proxy costs per query on this machine: the floor under the router's CPU.

Issue 4 allows the router 10% of the pod's CPU per query (about 0.36 ms for a 64-item RMC1
query, docs/benchmarks/router.md). This bench asks whether any proxy written in Python could meet
that here. In front of one stub pod (reads each body, answers 512 bytes of scores at once, so
the pod costs almost nothing), it measures the CPU per query of three fronts:

* `copy`: a bare asyncio proxy (uvloop, raw sockets): read the body into one buffer, write it on,
  relay the answer. No checks, no metrics, no ASGI.
* `splice`: the same, but the body goes client socket -> pipe -> pod socket with `os.splice`,
  so its bytes never enter user space.
* `router`: the real `recsched-pod --role router` in front of the same stub.

The client sends real 64-item RMC1 binary queries (352 KiB) at a fixed Poisson rate; CPU comes
from /proc for each front's process (user and system time). On loopback a sender also pays for
the receiver's TCP processing, so each front's figure includes the stub's receive path, as the
router's does in `router_overhead.py`.

    .venv/bin/python bench/proxy_floor.py [--qps 200] [--seconds 5] [--rounds 2]

Prints a markdown table; the run kept in the docs is in docs/benchmarks/router.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from pod_throughput import _cpu_model, free_port  # noqa: E402
from router_overhead import (  # noqa: E402
    cpu_split_s,
    make_bodies,
    open_loop,
    start_router,
    wait_ready,
)

F_SETPIPE_SZ = 1031
SCORES = b'{"outputs":[]}'.ljust(512)
ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(SCORES)
    + SCORES
)


def listening(port: int) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(128)
    server.setblocking(False)
    return server


async def read_head(sock: socket.socket) -> tuple[bytes, int, bytes] | None:
    """(head, Content-Length, body bytes read with the head), None at EOF."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(sock, 16384)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + b"\r\n\r\n", length, rest


async def serve(port: int, handle_connection) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    server = listening(port)
    tasks: set[asyncio.Task[None]] = set()
    while True:
        connection, _ = await loop.sock_accept(server)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(handle_connection(connection))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def stub_pod(port: int) -> None:
    loop = asyncio.get_running_loop()

    async def handle(connection: socket.socket) -> None:
        body = bytearray(1 << 20)
        while (request := await read_head(connection)) is not None:
            _, length, got = request[0], request[1], len(request[2])
            while got < length:
                received = await loop.sock_recv_into(connection, memoryview(body)[: length - got])
                if not received:
                    return
                got += received
            await loop.sock_sendall(connection, ANSWER)

    await serve(port, handle)


async def bare_proxy(port: int, upstream_port: int, use_splice: bool) -> None:
    loop = asyncio.get_running_loop()

    async def wait(fd: int, writable: bool) -> None:
        ready = loop.create_future()
        add, remove = (
            (loop.add_writer, loop.remove_writer)
            if writable
            else (
                loop.add_reader,
                loop.remove_reader,
            )
        )
        add(fd, ready.set_result, None)
        try:
            await ready
        finally:
            remove(fd)

    async def splice_body(client: socket.socket, upstream: socket.socket, left: int) -> None:
        read_end, write_end = os.pipe2(os.O_NONBLOCK)
        fcntl.fcntl(write_end, F_SETPIPE_SZ, 1 << 20)
        flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
        in_pipe = 0
        try:
            while left or in_pipe:
                moved = 0
                with contextlib.suppress(BlockingIOError):
                    moved = os.splice(client.fileno(), write_end, left, flags=flags) if left else 0
                left, in_pipe = left - moved, in_pipe + moved
                sent = 0
                with contextlib.suppress(BlockingIOError):
                    sent = os.splice(read_end, upstream.fileno(), in_pipe, flags=flags)
                in_pipe -= sent
                if not (moved or sent):
                    await wait(upstream.fileno() if not left else client.fileno(), not left)
        finally:
            os.close(read_end)
            os.close(write_end)

    async def handle(client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
        upstream.setblocking(False)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = bytearray(1 << 20)
        while (request := await read_head(client)) is not None:
            head, length, first = request
            if use_splice:
                await loop.sock_sendall(upstream, head + first)
                await splice_body(client, upstream, length - len(first))
            else:
                view = memoryview(body)
                view[: len(first)] = first
                got = len(first)
                while got < length:
                    got += await loop.sock_recv_into(client, view[got:length])
                await loop.sock_sendall(upstream, head)
                await loop.sock_sendall(upstream, view[:length])
            answer = await read_head(upstream)
            assert answer is not None
            await loop.sock_sendall(client, answer[0] + answer[2])

    await serve(port, handle)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--qps", type=float, default=200)
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--role", choices=["stub", "copy", "splice"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "stub":
        uvloop.run(stub_pod(args.port))
        return 0
    if args.role is not None:
        uvloop.run(bare_proxy(args.port, args.upstream, args.role == "splice"))
        return 0

    stub_port = free_port()
    ports = {"direct": stub_port, "copy": free_port(), "splice": free_port(), "router": free_port()}
    me = [sys.executable, __file__]
    stub = subprocess.Popen([*me, "--role", "stub", "--port", str(stub_port)])
    fronts = {
        role: subprocess.Popen(
            [*me, "--role", role, "--port", str(ports[role]), "--upstream", str(stub_port)]
        )
        for role in ("copy", "splice")
    }
    fronts["router"] = start_router(ports["router"], stub_port, [])
    rows: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ports}
    load_before = os.getloadavg()[0]
    try:
        wait_ready(f"http://127.0.0.1:{ports['router']}")
        bodies = make_bodies(32, args.items, seed=1)
        for port in ports.values():  # warm every path
            asyncio.run(open_loop(f"http://127.0.0.1:{port}", bodies, args.qps, 1, seed=0))
        for round_index in range(args.rounds):
            for name, port in ports.items():
                pid = (stub if name == "direct" else fronts[name]).pid
                user_s, system_s = cpu_split_s(pid)
                latencies = asyncio.run(
                    open_loop(
                        f"http://127.0.0.1:{port}", bodies, args.qps, args.seconds, seed=round_index
                    )
                )
                user_after_s, system_after_s = cpu_split_s(pid)
                count = len(latencies)
                rows[name].append(
                    (
                        (user_after_s - user_s) / count * 1e3,
                        (system_after_s - system_s) / count * 1e3,
                        statistics.median(latencies) * 1e3,
                    )
                )
                print(name, round_index, count, rows[name][-1], file=sys.stderr, flush=True)
    finally:
        for process in (*fronts.values(), stub):
            process.terminate()
            process.wait(timeout=30)
    print(render(rows, args, load_before, os.getloadavg()[0]))
    return 0


def render(
    rows: dict[str, list[tuple[float, float, float]]],
    args: argparse.Namespace,
    load_before: float,
    load_after: float,
) -> str:
    kb = round(len(make_bodies(1, args.items, seed=1)[0][0]) / 1024)
    lines = [
        f"Machine: {os.cpu_count()} CPUs ({_cpu_model()}). Command: `.venv/bin/python "
        f"bench/proxy_floor.py --qps {args.qps:g} --items {args.items} --seconds "
        f"{args.seconds:g} --rounds {args.rounds}`. {args.items}-item RMC1 queries ({kb} KiB), "
        f"{args.rounds} rounds of {args.seconds:g} s per front, alternating; 1-minute load "
        f"average {load_before:.2f} before, {load_after:.2f} after.",
        "",
        "| front | CPU ms/query (user + system), per round | mean | p50 ms (mean) |",
        "|---|---|---|---|",
    ]
    for name, measured in rows.items():
        label = "stub pod itself (no front)" if name == "direct" else name
        per_round = ", ".join(
            f"{user + system:.2f} ({user:.2f} + {system:.2f})" for user, system, _ in measured
        )
        mean_cpu = statistics.fmean(user + system for user, system, _ in measured)
        mean_p50 = statistics.fmean(p50 for _, _, p50 in measured)
        lines.append(f"| {label} | {per_round} | {mean_cpu:.2f} | {mean_p50:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
