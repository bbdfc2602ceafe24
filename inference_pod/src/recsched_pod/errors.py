"""The pod's exceptions and their one mapping to HTTP responses.

Every failure a client can cause or see is one of these; `error_response` is the only place that
turns them into status codes, so the router and the pod answer the same problem the same way.
"""

from __future__ import annotations

import math

import orjson
from starlette.responses import Response


class PodError(Exception):
    """Base of every error the pod reports to a client."""

    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        return {}


class InvalidInputError(PodError):
    """The query is malformed: bad JSON, a missing or mistyped input, a wrong shape, an index out
    of range. The message names the field."""

    status_code = 400


class UnauthorizedError(PodError):
    status_code = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class ModelNotFoundError(PodError):
    status_code = 404


class PayloadTooLargeError(PodError):
    """The query has more items than the pod accepts, or the body is larger than allowed."""

    status_code = 413


class UnavailableError(PodError):
    """Not ready yet, or overloaded: the client should retry after `retry_after_ms`."""

    status_code = 503

    def __init__(self, message: str, retry_after_ms: int, reason: str) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms
        self.reason = reason

    def headers(self) -> dict[str, str]:
        # Retry-After is whole seconds by RFC 9110; the millisecond hint rides beside it.
        return {
            "Retry-After": str(max(1, math.ceil(self.retry_after_ms / 1000))),
            "Retry-After-Ms": str(self.retry_after_ms),
        }


class UpstreamError(PodError):
    """The router could not get an answer from any endpoint of the pool."""

    status_code = 502


class UpstreamTimeoutError(PodError):
    """The pool endpoint took longer than the router's upstream timeout."""

    status_code = 504


def error_response(error: PodError) -> Response:
    """The single mapping from a pod error to an OIP v2 error response (`{"error": message}`)."""
    return Response(
        content=orjson.dumps({"error": error.message}),
        status_code=error.status_code,
        headers=error.headers(),
        media_type="application/json",
    )
