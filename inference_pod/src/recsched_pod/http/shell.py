"""HTTP pieces the pod and the router share, so both answer the same request the same way:
bounded body reading, the bearer-token check, model metadata, the /admin routes, reject reasons.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import orjson
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from recsched_pod import __version__
from recsched_pod.config_document import ConfigDocumentError, parse_config_document
from recsched_pod.errors import (
    InvalidInputError,
    ModelNotFoundError,
    PayloadTooLargeError,
    PodError,
    UnauthorizedError,
    UnavailableError,
    error_response,
)
from recsched_pod.live_config import LiveConfig
from recsched_pod.models.spec import DENSE_INPUT, SCORES_OUTPUT, SPARSE_INPUT, ModelInputSpec
from recsched_pod.settings import PodSettings

HEADER_ALLOWANCE_BYTES = 64 * 1024
_JSON_BYTES_PER_VALUE = 32  # generous: "-1.2345678901234567e-05, " is 25 characters
_REJECT_REASONS: dict[type[PodError], str] = {
    InvalidInputError: "invalid",
    PayloadTooLargeError: "too_large",
    ModelNotFoundError: "unknown_model",
}


def json_response(payload: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json")


def max_body_bytes(spec: ModelInputSpec, max_items: int) -> int:
    """The largest body a valid query can need, in JSON (binary is always smaller)."""
    values_per_item = spec.dense_features + spec.num_tables * spec.lookups_per_table
    return HEADER_ALLOWANCE_BYTES + max_items * values_per_item * _JSON_BYTES_PER_VALUE


async def read_body(request: Request, limit_bytes: int) -> bytearray:
    """The request body, refused with 413 as soon as it is known to exceed `limit_bytes`.

    With a Content-Length the body lands in one buffer and tensors decoded from it are views of
    that buffer: the server's own (`lean_http`) hands it over whole, so it is taken as it is;
    under other servers the chunks are copied into one preallocated buffer (no join).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        expected = int(declared)
        if expected > limit_bytes:
            raise PayloadTooLargeError(
                f"body of {declared} bytes exceeds the limit of {limit_bytes}"
            )
        body: bytearray | None = None
        received = 0
        async for chunk in request.stream():
            if body is None and len(chunk) == expected and isinstance(chunk, bytearray):
                body, received = chunk, expected  # delivered whole: no copy
                continue
            end = received + len(chunk)
            if end > expected:
                raise InvalidInputError(f"body is longer than its Content-Length {expected}")
            if body is None:
                body = bytearray(expected)
            body[received:end] = chunk
            received = end
        if received != expected:
            raise InvalidInputError(f"body ended after {received} of {expected} bytes")
        return body if body is not None else bytearray()
    buffer = bytearray()
    async for chunk in request.stream():
        buffer += chunk
        if len(buffer) > limit_bytes:
            raise PayloadTooLargeError(f"body exceeds the limit of {limit_bytes} bytes")
    return buffer


def reject_reason(error: PodError) -> str:
    if isinstance(error, UnavailableError):
        return error.reason
    return _REJECT_REASONS.get(type(error), "error")


def check_bearer(request: Request, expected: str | None) -> None:
    if expected is None:
        raise UnauthorizedError("admin is disabled: no admin token is configured")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), expected):
        raise UnauthorizedError("missing or wrong bearer token")


def check_model_name(name: str, settings: PodSettings) -> None:
    if name != settings.model:
        raise ModelNotFoundError(f"unknown model {name!r}; this server serves {settings.model!r}")


def model_metadata(settings: PodSettings, spec: ModelInputSpec) -> dict[str, object]:
    """OIP v2 model metadata; `parameters.table_rows` lets clients make valid indices."""
    inputs: list[dict[str, object]] = []
    if spec.has_dense:
        inputs.append({"name": DENSE_INPUT, "datatype": "FP32", "shape": [-1, spec.dense_features]})
    inputs.append(
        {
            "name": SPARSE_INPUT,
            "datatype": "INT64",
            "shape": [-1, spec.num_tables, spec.lookups_per_table],
        }
    )
    return {
        "name": settings.model,
        "versions": ["1"],
        "platform": "pytorch",
        "inputs": inputs,
        "outputs": [{"name": SCORES_OUTPUT, "datatype": "FP32", "shape": [-1, spec.output_width]}],
        "parameters": {
            "table_rows": ",".join(str(rows) for rows in spec.table_rows),
            "max_query_items": settings.max_query_items,
            "device": settings.device,
            "scale": settings.scale,
        },
    }


def add_admin_routes(app: FastAPI, live: LiveConfig, token: str | None) -> None:
    """`GET`/`PUT /admin/config`, both behind the bearer token."""

    @app.get("/admin/config")
    async def get_config(request: Request) -> Response:
        check_bearer(request, token)
        return json_response(live.current.to_json_dict())

    @app.put("/admin/config")
    async def put_config(request: Request) -> Response:
        check_bearer(request, token)
        body = await read_body(request, HEADER_ALLOWANCE_BYTES)
        try:
            document = parse_config_document(body, "PUT /admin/config")
        except ConfigDocumentError as error:
            raise InvalidInputError(str(error)) from None
        result = live.apply(document, "PUT /admin/config")
        return json_response(
            {
                "applied": result.applied,
                "reason": result.reason,
                "config": result.config.to_json_dict(),
            }
        )


InferHandler = Callable[[str, Request], Awaitable[Response]]


def add_oip_routes(
    app: FastAPI,
    *,
    server_name: str,
    settings: PodSettings,
    spec: ModelInputSpec,
    is_ready: Callable[[], bool],
    metrics_text: Callable[[], bytes],
) -> None:
    """Health, server and model metadata, model readiness and /metrics: the same for pod and
    router, so clients cannot tell which one they talk to except by `server_name`."""

    def readiness(payload: dict[str, object]) -> Response:
        ready = is_ready()
        return json_response({**payload, "ready": ready}, 200 if ready else 503)

    @app.get("/v2/health/live")
    async def live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return readiness({})

    @app.get("/v2")
    async def server_metadata() -> Response:
        return json_response(
            {"name": server_name, "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(metrics_text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def metadata(name: str) -> Response:
        check_model_name(name, settings)
        return json_response(model_metadata(settings, spec))

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str) -> Response:
        check_model_name(name, settings)
        return readiness({"name": name})


def infer_model_name(path: str) -> str | None:
    """`m` from `/v2/models/m/infer` or `/v2/models/m/versions/v/infer`, else None."""
    parts = path.split("/")
    if len(parts) == 5 and parts[:3] == ["", "v2", "models"] and parts[4] == "infer":
        return parts[3]
    if (
        len(parts) == 7
        and parts[:3] == ["", "v2", "models"]
        and parts[4] == "versions"
        and (parts[6] == "infer")
    ):
        return parts[3]
    return None


def with_infer_fast_path(app: FastAPI, handler: InferHandler) -> ASGIApp:
    """Serve `POST .../infer` straight from ASGI, everything else through FastAPI.

    The infer path is the hot path: FastAPI's routing and parameter resolution cost about a
    tenth of a millisecond per query, which the router pays on top of the pod (measured in
    docs/benchmarks/router.md). Errors are still mapped by `error_response`.
    """

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            name = infer_model_name(scope["path"])
            if name is not None:
                request = Request(scope, receive)
                try:
                    response = await handler(name, request)
                except PodError as error:
                    response = error_response(error)
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    return asgi
