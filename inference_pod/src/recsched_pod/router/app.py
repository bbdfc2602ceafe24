"""The router: one RecModel's OIP v2 front door, routing whole queries by size (DeepRecSched's T).

A query of N >= T items goes to the GPU pool, a smaller one to the CPU pool; N comes from the
JSON header's shapes, the tensor data is never decoded and the body is forwarded unchanged. Headers
are validated with the pod's own checks, so a bad query gets the same 4xx here as at a pod (data
errors, such as an index out of range, come back from the pod itself).

Within a pool, the endpoint with the fewest queries outstanding gets the query. A failed
connection (refused, reset, or closed before any response) is retried once on another endpoint:
scoring has no side effects, and a pod that dropped the connection did not deliver its work. A
timeout, an answer cut off part-way, or any HTTP answer is never retried, except a 503, which a pod
sends before starting work. With no ready GPU endpoint, GPU-bound queries fall back to the CPU
pool (counted).

CPU per query is this component's budget (docs/benchmarks/router.md), so the infer path is lean
end to end: served with uvicorn's `http=LeanHttpProtocol` (`lean_http`), the body lands in one
buffer; `router_infer` checks the header without copying the body, and `upstream_client` forwards
it over kept-alive connections. Everything else (health, metadata, /metrics, /admin) is the
FastAPI app. The app is plain ASGI and also runs under uvicorn's stock protocols, only slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from fastapi import FastAPI, Request
from prometheus_client import Gauge, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from recsched_pod import __version__
from recsched_pod.config_document import ConfigDocument
from recsched_pod.errors import (
    PodError,
    UnavailableError,
    UpstreamError,
    UpstreamTimeoutError,
    error_response,
)
from recsched_pod.http.protocol import HEADER_LENGTH
from recsched_pod.http.shell import (
    add_admin_routes,
    add_oip_routes,
    check_model_name,
    infer_model_name,
    max_body_bytes,
    reject_reason,
)
from recsched_pod.live_config import LiveConfig, initial_config, watch_config_file
from recsched_pod.metrics import RouterMetrics
from recsched_pod.models import model_spec
from recsched_pod.models.spec import ModelInputSpec
from recsched_pod.router.aiohttp_upstream import AiohttpUpstreamPool
from recsched_pod.router.endpoints import (
    EndpointSourceError,
    PoolEndpoints,
    parse_addresses,
    read_endpoints_file,
    resolve_dns,
)
from recsched_pod.router.infer import (
    HEADER_BYTES,
    InferEndpoint,
    QuerySizes,
    receive_body,
    send_upstream_response,
)
from recsched_pod.router.upstream_client import (
    KEEPALIVE_S,
    BodyPart,
    UpstreamBrokenError,
    UpstreamConnectError,
    UpstreamPool,
    UpstreamResponse,
)
from recsched_pod.settings import PodSettings

logger = logging.getLogger(__name__)

_FORWARDED_REQUEST_HEADERS = frozenset((b"content-type", HEADER_LENGTH.encode()))
_RETURNED_RESPONSE_HEADERS = (
    b"content-type",
    HEADER_LENGTH.encode(),
    b"retry-after",
    b"retry-after-ms",
)


@dataclass
class RouterRuntime:
    settings: PodSettings
    spec: ModelInputSpec
    live: LiveConfig
    metrics: RouterMetrics
    body_limit_bytes: int
    pools: dict[str, PoolEndpoints] = field(
        default_factory=lambda: {"cpu": PoolEndpoints("cpu"), "gpu": PoolEndpoints("gpu")}
    )
    session: aiohttp.ClientSession | None = None  # readiness probes only
    upstreams: dict[str, UpstreamPool | AiohttpUpstreamPool] = field(default_factory=dict)
    _in_flight: dict[str, Gauge] = field(default_factory=dict)  # labelled once: 10 us a lookup

    @property
    def ready(self) -> bool:
        return self.pools["cpu"].ready_count() > 0

    def choose_pool(self, items: int) -> str:
        if items < self.live.current.offload_threshold:
            return "cpu"
        if self.pools["gpu"].ready_count() == 0:
            self.metrics.fallback()
            return "cpu"
        return "gpu"

    def upstream(self, address: str) -> UpstreamPool | AiohttpUpstreamPool:
        upstream = self.upstreams.get(address)
        if upstream is None:
            host, _, port = address.rpartition(":")
            client = (
                AiohttpUpstreamPool if self.settings.upstream_client == "aiohttp" else UpstreamPool
            )
            upstream = client(host.strip("[]"), int(port), _RETURNED_RESPONSE_HEADERS)
            self.upstreams[address] = upstream
        return upstream

    def forget_removed_upstreams(self) -> None:
        """Close the kept-alive connections of endpoints no pool lists any more."""
        known = {address for pool in self.pools.values() for address in pool.endpoints}
        for address in [address for address in self.upstreams if address not in known]:
            self.upstreams.pop(address).close()

    async def forward(
        self,
        pool_name: str,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body_parts: list[BodyPart],
    ) -> UpstreamResponse:
        """Send the query to one endpoint of the pool, retrying once where that is safe."""
        pool = self.pools[pool_name]
        tried: set[str] = set()
        last_error = f"no ready endpoint in the {pool_name} pool"
        refusal: UpstreamResponse | None = None
        for _attempt in range(2):
            endpoint = pool.pick(exclude=tried)
            if endpoint is None:
                break
            tried.add(endpoint.address)
            endpoint.outstanding += 1
            in_flight = self._in_flight.get(pool_name)
            if in_flight is None:
                in_flight = self._in_flight[pool_name] = self.metrics.in_flight(pool_name)
            in_flight.inc()
            try:
                response = await self.upstream(endpoint.address).post(
                    path, headers, body_parts, self.settings.upstream_timeout_s
                )
            except UpstreamConnectError as error:
                endpoint.ready = False  # until its next good readiness check
                self.metrics.upstream_error(pool_name, "connect")
                last_error = f"{endpoint.address}: {error}"
                logger.warning("upstream %s (%s) failed: %s", endpoint.address, pool_name, error)
                continue
            except UpstreamBrokenError as error:
                # The pod had started answering: it may have done the work; never retried.
                endpoint.ready = False
                self.metrics.upstream_error(pool_name, "disconnect")
                raise UpstreamError(f"query not served: {endpoint.address}: {error}") from error
            except TimeoutError as error:
                self.metrics.upstream_error(pool_name, "timeout")
                raise UpstreamTimeoutError(
                    f"{endpoint.address} ({pool_name} pool) did not answer within "
                    f"{self.settings.upstream_timeout_s} s"
                ) from error
            finally:
                endpoint.outstanding -= 1
                in_flight.dec()
            if response.status == 503:  # refused before any work: try another endpoint
                self.metrics.upstream_error(pool_name, "503")
                last_error = f"{endpoint.address} answered 503"
                refusal = response
                continue
            if response.status >= 500:
                self.metrics.upstream_error(pool_name, "5xx")
            return response
        if refusal is not None:
            return refusal  # every endpoint tried answered 503: pass the last one on
        raise UpstreamError(f"query not served: {last_error}")


def create_router_app(settings: PodSettings) -> ASGIApp:
    spec = model_spec(settings.model, scale=settings.scale)
    runtime = RouterRuntime(
        settings=settings,
        spec=spec,
        live=LiveConfig(initial_config(settings)),
        metrics=RouterMetrics(settings.recmodel),
        body_limit_bytes=max_body_bytes(spec, settings.max_query_items),
    )
    _load_static_endpoints(runtime)

    def publish(document: ConfigDocument) -> None:
        runtime.metrics.config_generation.set(document.generation)
        runtime.metrics.batch_size.set(document.batch_size)
        runtime.metrics.offload_threshold.set(document.offload_threshold)

    runtime.live.subscribe(publish)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
        )
        tasks = [
            asyncio.create_task(_refresh_endpoints(runtime)),
            asyncio.create_task(_check_health(runtime)),
        ]
        if settings.config_path is not None:
            tasks.append(
                asyncio.create_task(
                    watch_config_file(runtime.live, settings.config_path, settings.config_poll_s)
                )
            )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for upstream in runtime.upstreams.values():
                upstream.close()
            await runtime.session.close()

    app = FastAPI(title="recsched-router", version=__version__, lifespan=lifespan)
    app.state.runtime = runtime

    @app.exception_handler(PodError)
    async def _pod_error(_: Request, error: PodError) -> Response:
        return error_response(error)

    add_oip_routes(
        app,
        server_name="recsched-router",
        settings=settings,
        spec=spec,
        is_ready=lambda: runtime.ready,
        metrics_text=lambda: generate_latest(runtime.metrics.registry),
    )
    add_admin_routes(app, runtime.live, settings.admin_token)
    infer = _infer_endpoint(runtime)

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        # The infer path skips FastAPI: its routing and Request objects cost more CPU per query
        # than the forwarding itself (docs/benchmarks/router.md).
        if scope["type"] == "http" and scope["method"] == "POST":
            name = infer_model_name(scope["path"])
            if name is not None:
                await infer(name, scope, receive, send)
                return
        await app(scope, receive, send)

    return asgi


def _infer_endpoint(runtime: RouterRuntime) -> InferEndpoint:
    settings = runtime.settings
    query_sizes = QuerySizes(runtime.spec, settings.max_query_items)

    async def infer(name: str, scope: Scope, receive: Receive, send: Send) -> None:
        arrival_s = time.perf_counter()
        try:
            check_model_name(name, settings)
            if not runtime.ready:
                raise UnavailableError(
                    "no ready CPU pool endpoint", settings.retry_after_ms, reason="not_ready"
                )
            request_headers = dict(scope["headers"])
            body = await receive_body(
                receive, request_headers.get(b"content-length"), runtime.body_limit_bytes
            )
            if body is None:
                return  # the client went away: nobody to answer
            items = query_sizes.items(body, request_headers.get(HEADER_BYTES))
            runtime.metrics.query_items.observe(items)
            pool = runtime.choose_pool(items)
            forwarded = [
                (header_name, value)
                for header_name, value in request_headers.items()
                if header_name in _FORWARDED_REQUEST_HEADERS
            ]
            path = scope.get("raw_path") or scope["path"].encode()
            response = await runtime.forward(pool, path, forwarded, body.parts)
        except PodError as error:
            runtime.metrics.reject(reject_reason(error))
            await error_response(error)(scope, receive, send)
            return
        if response.status == 200:
            runtime.metrics.routed(pool, time.perf_counter() - arrival_s)
        await send_upstream_response(send, response)

    return infer


def _load_static_endpoints(runtime: RouterRuntime) -> None:
    settings = runtime.settings
    for pool, flag in (("cpu", settings.cpu_endpoints), ("gpu", settings.gpu_endpoints)):
        if flag:
            runtime.pools[pool].replace(parse_addresses(flag, f"--{pool}-endpoints"))
    if settings.endpoints_file is not None:
        for pool, addresses in read_endpoints_file(settings.endpoints_file).items():
            runtime.pools[pool].replace(addresses)
    if not any(
        (
            settings.cpu_endpoints,
            settings.endpoints_file,
            settings.cpu_endpoints_dns,
        )
    ):
        raise EndpointSourceError(
            "the router needs CPU pool endpoints: --cpu-endpoints, --endpoints-file or "
            "--cpu-endpoints-dns"
        )


async def _refresh_endpoints(runtime: RouterRuntime) -> None:
    """Re-resolve DNS names and re-read the endpoints file, forever."""
    settings = runtime.settings
    while True:
        for pool, name in (
            ("cpu", settings.cpu_endpoints_dns),
            ("gpu", settings.gpu_endpoints_dns),
        ):
            if name:
                runtime.pools[pool].replace(await asyncio.to_thread(resolve_dns, name))
        if settings.endpoints_file is not None:
            try:
                for pool, addresses in read_endpoints_file(settings.endpoints_file).items():
                    runtime.pools[pool].replace(addresses)
            except EndpointSourceError as error:
                logger.warning("endpoints file change skipped: %s", error)
        runtime.forget_removed_upstreams()
        await asyncio.sleep(settings.endpoint_refresh_s)


async def _check_health(runtime: RouterRuntime) -> None:
    """Mark each endpoint ready or not from its own /v2/health/ready, forever."""
    assert runtime.session is not None
    session = runtime.session
    probe_timeout = aiohttp.ClientTimeout(total=min(1.0, runtime.settings.health_check_s))

    async def probe(endpoint_url: str) -> bool:
        try:
            async with session.get(
                endpoint_url + "/v2/health/ready", timeout=probe_timeout
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    while True:
        for pool_name, pool in runtime.pools.items():
            endpoints = list(pool.endpoints.values())
            results = await asyncio.gather(*(probe(endpoint.url) for endpoint in endpoints))
            for endpoint, ok in zip(endpoints, results, strict=True):
                if endpoint.ready != ok:
                    logger.info(
                        "%s endpoint %s is %s",
                        pool_name,
                        endpoint.address,
                        "ready" if ok else "not ready",
                    )
                endpoint.ready = ok
            runtime.metrics.ready_endpoints(pool_name, pool.ready_count())
        await asyncio.sleep(runtime.settings.health_check_s)
