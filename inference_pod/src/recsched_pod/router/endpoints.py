"""The router's view of a pool: its endpoints, which are ready, and least-outstanding choice.

Endpoints come from flags, from a JSON file (local mode: `{"cpu": ["127.0.0.1:8001"], "gpu": []}`,
re-read when it changes) or from a headless Service's DNS name (cluster: every A record is a pod),
re-resolved periodically. Readiness comes from the pods' own `/v2/health/ready`, checked on a
timer, and from failed connections, which mark an endpoint down until its next good check.
"""

from __future__ import annotations

import itertools
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path


class EndpointSourceError(ValueError):
    """An endpoints flag or file that cannot be used; the message names it."""


@dataclass
class Endpoint:
    address: str  # host:port
    outstanding: int = 0
    ready: bool = False

    @property
    def url(self) -> str:
        host, _, port = self.address.rpartition(":")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # a bare IPv6 address from DNS
        return f"http://{host}:{port}"


@dataclass
class PoolEndpoints:
    """The endpoints of one pool; picks the ready one with the fewest queries outstanding."""

    pool: str
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def replace(self, addresses: list[str]) -> None:
        """Adopt a new address list, keeping the state of addresses already known."""
        self.endpoints = {
            address: self.endpoints.get(address, Endpoint(address)) for address in addresses
        }

    def ready_count(self) -> int:
        return sum(endpoint.ready for endpoint in self.endpoints.values())

    def pick(self, exclude: set[str]) -> Endpoint | None:
        candidates = [
            endpoint
            for endpoint in self.endpoints.values()
            if endpoint.ready and endpoint.address not in exclude
        ]
        if not candidates:
            return None
        fewest = min(endpoint.outstanding for endpoint in candidates)
        tied = [endpoint for endpoint in candidates if endpoint.outstanding == fewest]
        # Rotate among ties so equal endpoints share load instead of the first taking it all.
        return tied[next(self._turn) % len(tied)]


def parse_addresses(text: str, source: str) -> list[str]:
    addresses = [part.strip() for part in text.split(",") if part.strip()]
    for address in addresses:
        _check_address(address, source)
    return addresses


def read_endpoints_file(path: Path) -> dict[str, list[str]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EndpointSourceError(f"endpoints file {path}: {error}") from error
    if not isinstance(document, dict):
        raise EndpointSourceError(f"endpoints file {path}: must be an object of pool -> list")
    pools: dict[str, list[str]] = {}
    for pool in ("cpu", "gpu"):
        addresses = document.get(pool, [])
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise EndpointSourceError(
                f"endpoints file {path}: '{pool}' must be a list of host:port"
            )
        for address in addresses:
            _check_address(address, f"endpoints file {path}")
        pools[pool] = addresses
    return pools


def resolve_dns(name_and_port: str) -> list[str]:
    """Every address a headless Service name resolves to, as host:port (blocking: use a thread)."""
    host, _, port = name_and_port.rpartition(":")
    if not host or not port.isdigit():
        raise EndpointSourceError(f"DNS endpoint {name_and_port!r} must be name:port")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []  # no ready pods yet: the Service has no records
    return sorted({f"{info[4][0]}:{port}" for info in infos})


def _check_address(address: str, source: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EndpointSourceError(f"{source}: {address!r} is not host:port")
