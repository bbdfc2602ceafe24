"""The driver against the OIP test server over real HTTP: error accounting by kind, refused
connections, the in-flight bound, both HTTP clients.

Only counts are asserted here, never latency or rate: how the driver measures a stalled server
and keeps a Poisson rate is checked on a virtual clock in `test_open_loop_timing.py`."""

from __future__ import annotations

import pytest
from loadtest_server_process import TestServer

from recsched_loadtest.arrivals import constant_rate
from recsched_loadtest.driver import DriveOptions, drive_open_loop
from recsched_loadtest.oip_client import fetch_signature
from recsched_loadtest.sizes import FixedSizes
from recsched_loadtest.stats import RunRecords, RunSummary, summarize_run
from recsched_loadtest.transports import make_transport
from recsched_loadtest.workload import WorkloadSpec, build_workload
from support.ports import free_port


async def _run(
    url: str,
    rate_qps: float,
    duration_s: float,
    options: DriveOptions,
    client: str = "aiohttp",
    arrivals: str = "constant",
    model: str = "toy",
    signature_url: str | None = None,
) -> tuple[RunRecords, RunSummary]:
    signature = await fetch_signature(signature_url or url, "toy")
    spec = WorkloadSpec(
        profile=constant_rate(rate_qps, duration_s), arrivals=arrivals, sizes=FixedSizes(8)
    )
    workload = build_workload(spec, signature)
    transport = make_transport(client, url, model, options.max_in_flight)
    try:
        records = await drive_open_loop(
            transport,
            workload.queries,
            workload.scheduled_s,
            offered_qps=workload.offered_qps,
            duration_s=workload.duration_s,
            options=options,
        )
    finally:
        await transport.aclose()
    return records, summarize_run(records)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
async def test_every_failure_is_counted_by_kind_and_none_is_dropped(
    fresh_server: TestServer, client: str
) -> None:
    # Server-side request k: hangs past the client deadline if k % 7 == 0, else 503 if
    # k % 5 == 0, else answers with the wrong item count if k % 11 == 0.
    # The deadline (1 s) sits far from both a served query (~20 ms here, client overhead
    # included) and a hang (3 s): a busy machine must not turn a served query into a timeout.
    fresh_server.set_behaviour(
        service_s=0.001, servers=4, hang_every=7, hang_s=3.0, fail_every=5, wrong_items_every=11
    )
    options = DriveOptions(request_timeout_s=1.0, drain_timeout_s=2.0)
    _, summary = await _run(fresh_server.url, 100.0, 2.0, options, client=client)
    assert summary.queries == 200
    assert summary.errors == {"bad_response": 13, "http_503": 35, "timeout": 28}
    assert summary.ok == 124
    assert summary.ok + sum(summary.errors.values()) == summary.queries
    assert fresh_server.stats()["bad_requests"] == 0  # every body was valid


@pytest.mark.timeout(60)
async def test_refused_connections_are_counted_as_connection_errors(
    fresh_server: TestServer,
) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"
    _, summary = await _run(dead_url, 50.0, 1.0, DriveOptions(), signature_url=fresh_server.url)
    assert summary.errors == {"connection": 50} and summary.ok == 0
    assert not summary.meets_slo(target_ms=1e6)


@pytest.mark.timeout(60)
async def test_unknown_model_is_counted_as_http_404(fresh_server: TestServer) -> None:
    _, summary = await _run(fresh_server.url, 50.0, 0.5, DriveOptions(), model="nope")
    assert summary.errors == {"http_404": 25}


@pytest.mark.timeout(60)
async def test_the_in_flight_cap_shows_as_client_saturated_errors(fresh_server: TestServer) -> None:
    fresh_server.set_behaviour(service_s=0.2, servers=1)
    options = DriveOptions(max_in_flight=5, request_timeout_s=5.0, drain_timeout_s=5.0)
    _, summary = await _run(fresh_server.url, 50.0, 1.0, options)
    assert set(summary.errors) == {"client_saturated"}
    assert summary.errors["client_saturated"] >= 30
    assert summary.ok + summary.errors["client_saturated"] == 50
    assert summary.ok == fresh_server.stats()["requests"]
