"""An asyncio event loop on a virtual clock, for tests where timing is the subject.

The clock starts at 0 and moves only when the loop would wait (it jumps straight to the next
timer) or when `block_for` says the loop was blocked (blocking work, a GC pause, a frozen loop).
So a schedule of sleeps runs in no real time and every timestamp is exact: assertions can be on
the behaviour (order, lag, counts) with no allowance for a busy machine. Real I/O still works,
but a test using this loop should not need any.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """`time()` is virtual; see the module docstring."""

    def __init__(self) -> None:
        self.virtual_now_s = 0.0
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self.virtual_now_s


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        events: list[tuple[Any, int]] = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:  # nothing scheduled: only another thread can wake the loop
            return list(super().select(0.01))
        self._loop.virtual_now_s += timeout
        return events


def block_for(seconds: float) -> None:
    """The running loop was blocked for `seconds` (called from code running on it)."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualClockLoop), "block_for needs the virtual-clock loop"
    loop.virtual_now_s += seconds


def run_on_virtual_clock(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to completion on a fresh virtual-clock loop."""
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()
