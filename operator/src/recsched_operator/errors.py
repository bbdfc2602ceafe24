"""The operator's exceptions: one base class, and the invalid-spec error handlers turn permanent.

Handlers map `InvalidSpecError` to `kopf.PermanentError` (never retried) plus a `Ready=False,
reason=InvalidSpec` condition; everything else that is transient becomes `kopf.TemporaryError`.
"""

from __future__ import annotations


class RecSchedOperatorError(Exception):
    """Base of every error the operator raises on purpose."""


class InvalidSpecError(RecSchedOperatorError):
    """A RecModel spec that parses but cannot be served; names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class KubeApiError(RecSchedOperatorError):
    """A Kubernetes API call failed with an HTTP status the caller may want to inspect."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
