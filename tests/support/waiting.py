"""Waiting for a condition in tests: poll it with a deadline, never sleep a fixed time.

`wait_until` for synchronous tests, `eventually` for async ones (it also accepts a coroutine
function). Both fail at the deadline with the last reason the condition gave.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
_RETRIED = (AssertionError, KeyError, LookupError, TypeError)


def wait_until(check: Callable[[], T], *, timeout_s: float = 10.0, interval_s: float = 0.01) -> T:
    """Poll `check` until it returns a truthy value without raising; re-raise at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if result:
                return result
            error: BaseException = AssertionError(f"{check} stayed falsy for {timeout_s} s")
        except _RETRIED as exc:
            error = exc
        if time.monotonic() > deadline:
            raise error
        time.sleep(interval_s)


async def eventually(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]], *, timeout_s: float = 15.0
) -> Any:
    """Poll `check` until it returns a truthy value without raising; re-raise at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            error: BaseException = AssertionError(f"{check} stayed falsy for {timeout_s} s")
        except _RETRIED as exc:
            error = exc
        if time.monotonic() > deadline:
            raise error
        await asyncio.sleep(0.05)
