"""The router's pool bookkeeping: least-outstanding choice, rotation among ties, readiness, and
endpoint sources that fail with a message naming the bad entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsched_pod.router.endpoints import (
    EndpointSourceError,
    PoolEndpoints,
    parse_addresses,
    read_endpoints_file,
    resolve_dns,
)


def ready_pool(*addresses: str) -> PoolEndpoints:
    pool = PoolEndpoints("cpu")
    pool.replace(list(addresses))
    for endpoint in pool.endpoints.values():
        endpoint.ready = True
    return pool


def test_pick_prefers_the_endpoint_with_fewest_outstanding_queries() -> None:
    pool = ready_pool("a:1", "b:2", "c:3")
    pool.endpoints["a:1"].outstanding = 3
    pool.endpoints["b:2"].outstanding = 1
    pool.endpoints["c:3"].outstanding = 2
    picked = pool.pick(exclude=set())
    assert picked is not None and picked.address == "b:2"


def test_ties_rotate_so_idle_endpoints_share_load() -> None:
    pool = ready_pool("a:1", "b:2")
    picks = [pool.pick(exclude=set()) for _ in range(4)]
    assert [p.address for p in picks if p] == ["a:1", "b:2", "a:1", "b:2"]


def test_not_ready_and_excluded_endpoints_are_never_picked() -> None:
    pool = ready_pool("a:1", "b:2")
    pool.endpoints["a:1"].ready = False
    picked = pool.pick(exclude=set())
    assert picked is not None and picked.address == "b:2"
    assert pool.pick(exclude={"b:2"}) is None


def test_replacing_addresses_keeps_known_endpoint_state() -> None:
    pool = ready_pool("a:1", "b:2")
    pool.endpoints["a:1"].outstanding = 2
    pool.replace(["a:1", "c:3"])
    assert set(pool.endpoints) == {"a:1", "c:3"}
    assert pool.endpoints["a:1"].outstanding == 2 and pool.endpoints["a:1"].ready
    assert not pool.endpoints["c:3"].ready  # unknown until its first readiness check


def test_ipv6_addresses_get_brackets_in_urls() -> None:
    pool = ready_pool("fd00::1:8000")
    assert pool.endpoints["fd00::1:8000"].url == "http://[fd00::1]:8000"


@pytest.mark.parametrize("text", ["nohost", "host:", "host:99999", "host:http"])
def test_bad_endpoint_flags_name_the_entry(text: str) -> None:
    with pytest.raises(EndpointSourceError, match="is not host:port"):
        parse_addresses(text, "--cpu-endpoints")


def test_endpoints_file_is_read_per_pool(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.json"
    path.write_text('{"cpu": ["127.0.0.1:1", "127.0.0.1:2"]}', encoding="utf-8")
    assert read_endpoints_file(path) == {"cpu": ["127.0.0.1:1", "127.0.0.1:2"], "gpu": []}
    path.write_text('{"cpu": "127.0.0.1:1"}', encoding="utf-8")
    with pytest.raises(EndpointSourceError, match="'cpu' must be a list"):
        read_endpoints_file(path)


def test_dns_name_resolves_to_host_port_list() -> None:
    assert resolve_dns("localhost:8000") in (
        ["127.0.0.1:8000"],
        ["127.0.0.1:8000", "::1:8000"],
        ["::1:8000"],
    )
    with pytest.raises(EndpointSourceError, match="name:port"):
        resolve_dns("localhost")


@pytest.mark.parametrize("name", ["rm-cpu-pods.ns.svc", "rm-cpu-pods.ns.svc:http", ":8000"])
def test_a_dns_endpoint_without_a_port_stops_the_router_at_start(name: str) -> None:
    from pydantic import ValidationError

    from recsched_pod.settings import PodSettings

    with pytest.raises(ValidationError, match="cpu_endpoints_dns"):
        PodSettings(role="router", cpu_endpoints_dns=name)
    assert PodSettings(role="router", gpu_endpoints_dns="rm-gpu.ns.svc:8000").gpu_endpoints_dns
