"""A small pool of threads that parse slices of JSON tensor text while the decoding thread does the
rest of the query (pure: standard library only).

Where the time goes for a 611-item RMC1 JSON query (the production mix's 95th-percentile size),
one thread, quiet machine (docs/benchmarks/json_decode.md, "Stages of one query"): cutting the
arrays out and parsing the rest 0.3 ms, the 391,040 INT64 indices 10.8 ms (numpy's parser, which
releases the GIL), the 78,208 FP32 features 5.0 ms (orjson, which holds it), then 5 requests of
128 items at 1.4 ms each on 2 workers. Parsing the indices on two threads while the decoding
thread parses the features spreads that decode over both cores; the GIL is held only between
numpy's steps (`json_numbers.int64_numbers`) and through each orjson slice, which is why the
decode took 14.6 ms there rather than the 17.4 of one thread, not half of it.

The pool is process-wide and shared by queries in arrival order; `Prefetch.cancel` drops the
slices of a query that was refused before they start, so a bad query leaves no queued work.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Parse = Callable[[bytes], Any]

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_in_flight = 0  # slices submitted and neither finished nor cancelled


def decode_threads() -> int:
    """One per CPU this process may use, 2 to 4: the slices of one query are few."""
    affinity = getattr(os, "sched_getaffinity", None)  # None off Linux
    cpus = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    return max(2, min(4, cpus))


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(decode_threads(), thread_name_prefix="json-decode")
        return _executor


def _done(_: Future[Any]) -> None:
    global _in_flight
    with _lock:
        _in_flight -= 1


def busy() -> bool:
    """True while slices of some query are queued or parsing."""
    return _in_flight > 0


class Prefetch:
    """The slices of one text on the pool, in order; nothing until `start`."""

    def __init__(self) -> None:
        self.futures: list[Future[Any]] | None = None

    @property
    def started(self) -> bool:
        return self.futures is not None

    def start(self, parse: Parse, pieces: Sequence[bytes]) -> None:
        global _in_flight
        pool = _pool()
        with _lock:
            _in_flight += len(pieces)
        futures = []
        for piece in pieces:
            future = pool.submit(parse, piece)
            future.add_done_callback(_done)
            futures.append(future)
        self.futures = futures

    def results(self) -> Iterator[Any]:
        """Each slice's result in order, waiting for it (re-raises what `parse` raised)."""
        for future in self.futures or ():
            yield future.result()

    def cancel(self) -> int:
        """Drop the slices not started yet; returns how many were dropped."""
        return sum(future.cancel() for future in self.futures or ())
