"""The pod's HTTP shell: Open Inference Protocol v2 REST, /metrics and /admin on one port.

Thin by design: requests are decoded by `protocol`, scored by the `WorkerPool`, errors mapped by
`errors.error_response`. The model loads and warms up in the background after the server starts,
so liveness answers at once while readiness waits for a warm model (KServe's split).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson
import torch
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from recsched_pod import __version__
from recsched_pod.config_document import ConfigDocument
from recsched_pod.engine import WorkerPool, configure_process_threads
from recsched_pod.errors import (
    InvalidInputError,
    ModelNotFoundError,
    PayloadTooLargeError,
    PodError,
    UnauthorizedError,
    UnavailableError,
    error_response,
)
from recsched_pod.live_config import LiveConfig, parse_config_document, watch_config_file
from recsched_pod.metrics import PodMetrics
from recsched_pod.models import RecommendationModel, build_model, model_spec, random_query
from recsched_pod.models.spec import DENSE_INPUT, SCORES_OUTPUT, SPARSE_INPUT, ModelInputSpec
from recsched_pod.protocol import HEADER_LENGTH, decode_query, encode_response, split_body
from recsched_pod.settings import PodSettings

logger = logging.getLogger(__name__)

ModelFactory = Callable[[PodSettings], RecommendationModel]
_HEADER_ALLOWANCE_BYTES = 64 * 1024
_JSON_BYTES_PER_VALUE = 32  # generous: "-1.2345678901234567e-05, " is 25 characters
_REJECT_REASONS: dict[type[PodError], str] = {
    InvalidInputError: "invalid",
    PayloadTooLargeError: "too_large",
    ModelNotFoundError: "unknown_model",
}


def default_model_factory(settings: PodSettings) -> RecommendationModel:
    return build_model(settings.model, scale=settings.scale, seed=settings.seed)


def max_body_bytes(spec: ModelInputSpec, max_items: int) -> int:
    """The largest body a valid query can need, in JSON (binary is always smaller)."""
    values_per_item = spec.dense_features + spec.num_tables * spec.lookups_per_table
    return _HEADER_ALLOWANCE_BYTES + max_items * values_per_item * _JSON_BYTES_PER_VALUE


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
    ready: bool = False
    background: list[asyncio.Task[None]] = field(default_factory=list)

    def check_token(self, request: Request) -> None:
        expected = self.settings.admin_token
        if expected is None:
            raise UnauthorizedError("admin is disabled: no admin token is configured")
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), expected):
            raise UnauthorizedError("missing or wrong bearer token")

    def metadata(self) -> dict[str, object]:
        spec = self.spec
        inputs: list[dict[str, object]] = []
        if spec.has_dense:
            inputs.append(
                {"name": DENSE_INPUT, "datatype": "FP32", "shape": [-1, spec.dense_features]}
            )
        inputs.append(
            {
                "name": SPARSE_INPUT,
                "datatype": "INT64",
                "shape": [-1, spec.num_tables, spec.lookups_per_table],
            }
        )
        return {
            "name": self.settings.model,
            "versions": ["1"],
            "platform": "pytorch",
            "inputs": inputs,
            "outputs": [
                {"name": SCORES_OUTPUT, "datatype": "FP32", "shape": [-1, spec.output_width]}
            ],
            "parameters": {
                "table_rows": ",".join(str(rows) for rows in spec.table_rows),
                "max_query_items": self.settings.max_query_items,
                "device": self.settings.device,
                "scale": self.settings.scale,
            },
        }


def resolve_device(settings: PodSettings) -> torch.device:
    if settings.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for but CUDA is not available here")
        return torch.device("cuda")
    if settings.device == "emulated":
        raise RuntimeError("--device emulated is not available in this build of the pod")
    return torch.device("cpu")


def initial_config(settings: PodSettings) -> ConfigDocument:
    if settings.config_path is not None:
        raw = settings.config_path.read_bytes()
        return parse_config_document(raw, str(settings.config_path))
    return ConfigDocument(batchSize=settings.batch_size, workers=settings.initial_workers)


def _load_and_warm(runtime: PodRuntime, factory: ModelFactory) -> None:
    configure_process_threads(runtime.settings.gil_switch_interval_s)
    started_s = time.perf_counter()
    model = factory(runtime.settings).to(runtime.device).eval()
    generator = torch.Generator().manual_seed(runtime.settings.seed)
    sizes = {1, min(runtime.live.current.batch_size, runtime.settings.max_query_items)}
    with torch.inference_mode():
        for _ in range(runtime.settings.warmup_rounds):
            for items in sorted(sizes):
                dense, sparse = random_query(model.spec, items, generator)
                model(
                    None if dense is None else dense.to(runtime.device), sparse.to(runtime.device)
                )
    runtime.model = model
    logger.info(
        "model %s scale %g loaded and warmed on %s in %.1f s",
        runtime.settings.model,
        runtime.settings.scale,
        runtime.device,
        time.perf_counter() - started_s,
    )


def create_app(
    settings: PodSettings, model_factory: ModelFactory = default_model_factory
) -> FastAPI:
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
            runtime.pool.resize(document.workers)

    runtime.live.subscribe(publish)

    async def start_serving() -> None:
        try:
            await asyncio.to_thread(_load_and_warm, runtime, model_factory)
        except Exception:
            logger.exception("model %s failed to load; the pod stays not ready", settings.model)
            return
        assert runtime.model is not None
        runtime.pool = WorkerPool(
            runtime.model,
            runtime.device,
            metrics,
            workers=runtime.live.current.workers,
            max_queue_requests=settings.max_queue_requests,
            retry_after_ms=settings.retry_after_ms,
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

    _add_health_routes(app, runtime)
    _add_infer_routes(app, runtime)
    _add_admin_routes(app, runtime)
    return app


def _json(payload: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json")


def _add_health_routes(app: FastAPI, runtime: PodRuntime) -> None:
    @app.get("/v2/health/live")
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return _json({"ready": runtime.ready}, 200 if runtime.ready else 503)

    @app.get("/v2")
    async def server_metadata() -> Response:
        return _json(
            {
                "name": "recsched-pod",
                "version": __version__,
                "extensions": ["binary_tensor_data"],
            }
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        runtime.metrics.queued_requests.set(runtime.pool.queued_requests if runtime.pool else 0)
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _add_infer_routes(app: FastAPI, runtime: PodRuntime) -> None:
    def check_model(name: str) -> None:
        if name != runtime.settings.model:
            raise ModelNotFoundError(
                f"unknown model {name!r}; this pod serves {runtime.settings.model!r}"
            )

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str) -> Response:
        check_model(name)
        return _json(runtime.metadata())

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str) -> Response:
        check_model(name)
        return _json({"name": name, "ready": runtime.ready}, 200 if runtime.ready else 503)

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(name: str, request: Request) -> Response:
        arrival_s = time.perf_counter()
        try:
            check_model(name)
            pool = runtime.pool
            if not runtime.ready or pool is None:
                raise UnavailableError(
                    "model is not ready yet", runtime.settings.retry_after_ms, reason="not_ready"
                )
            body = await _read_body(request, runtime.body_limit_bytes)
            header, binary_part = split_body(body, request.headers.get(HEADER_LENGTH))
            query = decode_query(
                header, binary_part, runtime.spec, runtime.settings.max_query_items
            )
            # B is read once per query: a config change never splits this query differently.
            batch_items = runtime.live.current.batch_size
            scores = await pool.run_query(query.dense, query.sparse, batch_items, arrival_s)
        except PodError as error:
            reason = (
                error.reason
                if isinstance(error, UnavailableError)
                else (_REJECT_REASONS.get(type(error), "error"))
            )
            runtime.metrics.reject(reason)
            raise
        content, headers, media_type = encode_response(
            name, query.request_id, scores, query.binary_output
        )
        return Response(content, headers=headers, media_type=media_type)


async def _read_body(request: Request, limit_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise PayloadTooLargeError(f"body of {declared} bytes exceeds the limit of {limit_bytes}")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit_bytes:
            raise PayloadTooLargeError(f"body exceeds the limit of {limit_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _add_admin_routes(app: FastAPI, runtime: PodRuntime) -> None:
    @app.get("/admin/config")
    async def get_config(request: Request) -> Response:
        runtime.check_token(request)
        return _json(runtime.live.current.to_json_dict())

    @app.put("/admin/config")
    async def put_config(request: Request) -> Response:
        runtime.check_token(request)
        body = await _read_body(request, _HEADER_ALLOWANCE_BYTES)
        document = parse_config_document(body, "PUT /admin/config")
        result = runtime.live.apply(document, "PUT /admin/config")
        return _json(
            {
                "applied": result.applied,
                "reason": result.reason,
                "config": result.config.to_json_dict(),
            }
        )
