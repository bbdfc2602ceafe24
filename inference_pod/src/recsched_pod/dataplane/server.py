"""The pod's HTTP shell: Open Inference Protocol v2 REST, /metrics and /admin on one port.

Thin by design: requests are decoded by `protocol`, scored by the `WorkerPool`, errors mapped by
`errors.error_response`. The model loads and warms up in the background after the server starts,
so liveness answers at once while readiness waits for a warm model (KServe's split).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import torch
from fastapi import FastAPI, Request
from prometheus_client import generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp

from recsched_pod import __version__
from recsched_pod.config_document import ConfigDocument
from recsched_pod.dataplane.engine import WorkerPool, configure_process_threads
from recsched_pod.dataplane.gpu_emulation import PROFILE_BATCH_ITEMS, GpuLatencyProfile
from recsched_pod.dataplane.serving_graph import ServingGraph, serving_graph
from recsched_pod.errors import PodError, UnavailableError, error_response
from recsched_pod.http.protocol import HEADER_LENGTH, DecodedQuery, decode_body, encode_response
from recsched_pod.http.shell import (
    InferHandler,
    add_admin_routes,
    add_oip_routes,
    check_model_name,
    max_body_bytes,
    read_body,
    reject_reason,
    with_infer_fast_path,
)
from recsched_pod.live_config import LiveConfig, initial_config, watch_config_file
from recsched_pod.metrics import PodMetrics
from recsched_pod.models import RecommendationModel, build_model, model_spec, random_query
from recsched_pod.models.spec import ModelInputSpec
from recsched_pod.settings import PodSettings

logger = logging.getLogger(__name__)

ModelFactory = Callable[[PodSettings], RecommendationModel]


def default_model_factory(settings: PodSettings) -> RecommendationModel:
    return build_model(settings.model, scale=settings.scale, seed=settings.seed)


@dataclass
class PodRuntime:
    """What one pod process serves; `pool` exists once the model is loaded."""

    settings: PodSettings
    spec: ModelInputSpec
    metrics: PodMetrics
    live: LiveConfig
    device: torch.device
    body_limit_bytes: int
    pool: WorkerPool | None = None
    model: RecommendationModel | None = None
    graph: ServingGraph | None = None
    emulation: GpuLatencyProfile | None = None
    ready: bool = False
    background: list[asyncio.Task[None]] = field(default_factory=list)

    def batch_items(self) -> int:
        if self.settings.device == "cpu":
            return self.live.current.batch_size
        return self.settings.gpu_batch_cap_items

    def workers(self, document: ConfigDocument) -> int:
        """The config document's `workers` is the CPU pool's knob; GPU pods keep their own."""
        if self.settings.device == "cpu":
            return document.workers
        return self.settings.initial_workers


def resolve_device(settings: PodSettings) -> torch.device:
    """Where the model runs; an emulated GPU computes its scores on the CPU."""
    if settings.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for but CUDA is not available here")
        return torch.device("cuda")
    return torch.device("cpu")


def warmup_sizes(settings: PodSettings, batch_items: int) -> list[int]:
    """CPU pods warm at their batch size; GPU pods at every profiled size bucket."""
    if settings.device == "cpu":
        sizes = {1, batch_items}
    else:
        sizes = {*PROFILE_BATCH_ITEMS, settings.gpu_batch_cap_items}
    return sorted(size for size in sizes if size <= settings.max_query_items)


def _load_and_warm(runtime: PodRuntime, factory: ModelFactory) -> None:
    settings = runtime.settings
    configure_process_threads(settings.gil_switch_interval_s)
    started_s = time.perf_counter()
    model = factory(settings).to(runtime.device).eval()
    graph = serving_graph(model, runtime.device, settings.graph_mode, settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    rounds = max(settings.warmup_rounds, 3 if settings.device == "emulated" else 0)
    cpu_latency_s: dict[int, float] = {}
    with torch.inference_mode():
        for items in warmup_sizes(settings, runtime.live.current.batch_size):
            dense, sparse = random_query(model.spec, items, generator)
            dense = None if dense is None else dense.to(runtime.device)
            sparse = sparse.to(runtime.device)
            timings = []
            for _ in range(rounds):
                round_started_s = time.perf_counter()
                graph.scorer(dense, sparse).cpu()
                timings.append(time.perf_counter() - round_started_s)
            if timings:
                cpu_latency_s[items] = sorted(timings)[len(timings) // 2]
    if settings.device == "emulated":
        runtime.emulation = (
            GpuLatencyProfile.load(settings.gpu_profile_path, settings.model)
            if settings.gpu_profile_path is not None
            else GpuLatencyProfile.from_cpu_times(
                settings.model,
                {
                    size: cpu_latency_s[size]
                    for size in PROFILE_BATCH_ITEMS
                    if size in cpu_latency_s
                },
            )
        )
        logger.info(
            "device=emulated GPU profile (%s): %s",
            runtime.emulation.source,
            ", ".join(
                f"{b} items {s * 1e3:.2f} ms"
                for b, s in zip(
                    runtime.emulation.batch_items, runtime.emulation.latency_s, strict=True
                )
            ),
        )
    runtime.model, runtime.graph = model, graph
    logger.info(
        "model %s scale %g loaded and warmed on device=%s in %.1f s, graph %s (%s)",
        settings.model,
        settings.scale,
        settings.device,
        time.perf_counter() - started_s,
        graph.mode,
        graph.reason,
    )


def create_app(
    settings: PodSettings, model_factory: ModelFactory = default_model_factory
) -> ASGIApp:
    """Build the pod's app; the model loads in the background once the app starts."""
    spec = model_spec(settings.model, scale=settings.scale)
    metrics = PodMetrics(settings.recmodel, settings.pool_label, settings.device)
    runtime = PodRuntime(
        settings=settings,
        spec=spec,
        metrics=metrics,
        live=LiveConfig(initial_config(settings)),
        device=resolve_device(settings),
        body_limit_bytes=max_body_bytes(spec, settings.max_query_items),
    )

    def publish(document: ConfigDocument) -> None:
        metrics.config_generation.set(document.generation)
        metrics.batch_size.set(document.batch_size)
        metrics.offload_threshold.set(document.offload_threshold)
        if runtime.pool is not None:
            runtime.pool.resize(runtime.workers(document))

    runtime.live.subscribe(publish)

    async def start_serving() -> None:
        try:
            await asyncio.to_thread(_load_and_warm, runtime, model_factory)
        except Exception:
            logger.exception("model %s failed to load; the pod stays not ready", settings.model)
            return
        assert runtime.model is not None and runtime.graph is not None
        runtime.pool = WorkerPool(
            runtime.model,
            runtime.device,
            metrics,
            workers=runtime.workers(runtime.live.current),
            max_queue_requests=settings.max_queue_requests,
            retry_after_ms=settings.retry_after_ms,
            emulation=runtime.emulation,
            scorer=runtime.graph.scorer,
            pin=settings.pin_workers,
        )
        runtime.ready = True

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.background.append(asyncio.create_task(start_serving()))
        if settings.config_path is not None:
            runtime.background.append(
                asyncio.create_task(
                    watch_config_file(runtime.live, settings.config_path, settings.config_poll_s)
                )
            )
        try:
            yield
        finally:
            for task in runtime.background:
                task.cancel()
            if runtime.pool is not None:
                await asyncio.to_thread(runtime.pool.close)

    app = FastAPI(title="recsched-pod", version=__version__, lifespan=lifespan)
    app.state.runtime = runtime

    @app.exception_handler(PodError)
    async def _pod_error(_: Request, error: PodError) -> Response:
        return error_response(error)

    def metrics_text() -> bytes:
        metrics.queued_requests.set(runtime.pool.queued_requests if runtime.pool else 0)
        return generate_latest(metrics.registry)

    add_oip_routes(
        app,
        server_name="recsched-pod",
        settings=settings,
        spec=spec,
        is_ready=lambda: runtime.ready,
        metrics_text=metrics_text,
    )
    infer = _infer_handler(runtime)
    add_admin_routes(app, runtime.live, settings.admin_token)
    return with_infer_fast_path(app, infer)


# JSON bodies above this are decoded on a thread: a 1024-item RMC1 query takes tens of ms to parse
# even on the fast path, which would hold every other query's I/O. Below it, the thread hop
# (~0.1 ms) would cost more than the decode. Binary bodies always decode inline (views, no parse).
INLINE_JSON_DECODE_BYTES = 64 << 10


async def _decode(runtime: PodRuntime, body: bytearray, header_length: str | None) -> DecodedQuery:
    spec, max_items = runtime.spec, runtime.settings.max_query_items
    if header_length is None and len(body) > INLINE_JSON_DECODE_BYTES:
        return await asyncio.to_thread(decode_body, body, header_length, spec, max_items)
    return decode_body(body, header_length, spec, max_items)


def _infer_handler(runtime: PodRuntime) -> InferHandler:
    async def infer(name: str, request: Request) -> Response:
        arrival_s = time.perf_counter()
        try:
            check_model_name(name, runtime.settings)
            pool = runtime.pool
            if not runtime.ready or pool is None:
                raise UnavailableError(
                    "model is not ready yet", runtime.settings.retry_after_ms, reason="not_ready"
                )
            body = await read_body(request, runtime.body_limit_bytes)
            query = await _decode(runtime, body, request.headers.get(HEADER_LENGTH))
            # B is read once per query: a config change never splits this query differently.
            batch_items = runtime.batch_items()
            scores = await pool.run_query(query.dense, query.sparse, batch_items, arrival_s)
        except PodError as error:
            runtime.metrics.reject(reject_reason(error))
            raise
        content, headers, media_type = encode_response(
            name, query.request_id, scores, query.binary_output
        )
        return Response(content, headers=headers, media_type=media_type)

    return infer
