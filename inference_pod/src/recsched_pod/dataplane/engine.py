"""DeepRecSched's CPU execution: split a query into requests and run them on a worker pool.

A query of N items becomes ceil(N/B) requests of B items (the last holds the remainder) on one
shared FIFO served by `workers` threads, each running the model with one intra-op thread, so the
threads share one copy of the embedding tables (the paper's engines each held their own). B is read
once per query, when it is split, so a config change never splits an in-flight query or request;
the worker count is resized between requests. The FIFO is bounded by admission: a query whose
requests would overflow it is refused at once with `UnavailableError` (503), never queued.

Workers may be pinned one per CPU (`worker_cpus`): unpinned, a query split across two workers
after an idle gap ran as slowly as the whole query on a 2-CPU machine, pinned 26-41% faster
(docs/benchmarks/pinning.md); the likely cause is that the two workers, woken together, start on
one CPU and share it until the kernel balances them.

Query latency runs from arrival to the completion of its last request, as in DeepRecInfra.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from recsched_pod.dataplane.gpu_emulation import GpuLatencyProfile, VirtualGpu
from recsched_pod.dataplane.serving_graph import Scorer
from recsched_pod.errors import UnavailableError
from recsched_pod.metrics import PodMetrics
from recsched_pod.models import RecommendationModel
from recsched_pod.settings import PinPolicy

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
_IDLE_POLL_S = 0.2  # how often an idle worker checks whether the pool shrank


def worker_cpus(policy: PinPolicy, workers: int, allowed: frozenset[int]) -> list[int] | None:
    """The CPU each of `workers` workers is pinned to, or None to leave placement to the kernel.

    `on` pins worker i to the i-th allowed CPU (round robin). `auto` pins only when the process
    may use no more CPUs than it has workers, as in a container with an exclusive cpuset (the
    kubelet's static CPU manager, integer CPU requests): on a shared CPU set, pinning to a
    fixed few would pile pods onto the same CPUs.
    """
    cpus = sorted(allowed)
    if policy == "off" or not cpus or (policy == "auto" and not 2 <= len(cpus) <= workers):
        return None
    return [cpus[index % len(cpus)] for index in range(workers)]


def allowed_cpus() -> frozenset[int]:
    """The CPUs this process may run on; empty where the platform cannot pin threads."""
    if not hasattr(os, "sched_getaffinity") or not hasattr(os, "sched_setaffinity"):
        return frozenset()  # pragma: no cover - non-Linux
    return frozenset(os.sched_getaffinity(0))


def requests_for(items: int, batch_items: int) -> list[tuple[int, int]]:
    """The [start, stop) item ranges of the ceil(items / batch_items) requests of a query."""
    return [(start, min(start + batch_items, items)) for start in range(0, items, batch_items)]


@dataclass(eq=False)
class _Query:
    dense: torch.Tensor | None
    sparse: torch.Tensor
    scores: npt.NDArray[np.float32]
    arrival_s: float
    remaining: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[npt.NDArray[np.float32]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    failed: bool = False


@dataclass(frozen=True, eq=False)
class _Request:
    query: _Query
    start: int
    stop: int
    enqueued_s: float


class WorkerPool:
    """A resizable pool of model worker threads behind one bounded FIFO.

    Workers call `scorer` (default: the model itself), normally its TorchScript trace
    (`serving_graph`), which runs a whole request without the GIL.
    """

    def __init__(
        self,
        model: RecommendationModel,
        device: torch.device,
        metrics: PodMetrics,
        workers: int,
        max_queue_requests: int,
        retry_after_ms: int,
        clock: Clock = time.perf_counter,
        emulation: GpuLatencyProfile | None = None,
        scorer: Scorer | None = None,
        pin: PinPolicy = "off",
        cpus: frozenset[int] | None = None,
    ) -> None:
        self._model = model
        self._pin = pin
        self._cpus = allowed_cpus() if cpus is None else cpus
        self._placement: list[int] | None = None
        self._scorer: Scorer = model if scorer is None else scorer
        self._emulation = emulation
        self._virtual_gpu = VirtualGpu()
        self._device = device
        self._metrics = metrics
        self._max_queue_requests = max_queue_requests
        self._retry_after_ms = retry_after_ms
        self._clock = clock
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._target_workers = 0
        self._threads: dict[int, threading.Thread] = {}
        self._resize_lock = threading.Lock()
        self.resize(workers)

    @property
    def workers(self) -> int:
        return self._target_workers

    @property
    def placement(self) -> list[int] | None:
        """The CPU each worker is pinned to, or None when the kernel places them."""
        return self._placement

    @property
    def queued_requests(self) -> int:
        return self._pending

    def resize(self, workers: int) -> None:
        """Grow at once; shrink as surplus workers finish their current request."""
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        with self._resize_lock:
            self._target_workers = workers
            for index in range(workers):
                if index not in self._threads:
                    thread = threading.Thread(
                        target=self._work, args=(index,), name=f"model-worker-{index}", daemon=True
                    )
                    self._threads[index] = thread
                    thread.start()
            self._place_workers(workers)
        self._metrics.workers.set(workers)

    def _place_workers(self, workers: int) -> None:
        """Pin each live worker to its CPU, or give it back every allowed CPU (under the lock)."""
        placement = worker_cpus(self._pin, workers, self._cpus)
        if placement is None and self._placement is None:
            return  # never pinned: nothing to undo
        for index, thread in self._threads.items():
            cpus = self._cpus if placement is None or index >= workers else {placement[index]}
            if thread.native_id is None:
                continue
            try:
                os.sched_setaffinity(thread.native_id, cpus)
            except ProcessLookupError:  # a surplus worker that just exited
                pass
            except OSError as error:  # e.g. the cpuset changed under us: serve unpinned
                logger.warning("could not set worker %d's CPUs to %s: %s", index, cpus, error)
        if placement != self._placement:
            logger.info("model workers pinned to CPUs %s", placement or "none (kernel placement)")
            self._placement = placement

    def close(self, timeout_s: float = 5.0) -> None:
        with self._resize_lock:
            self._target_workers = 0
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout=timeout_s)

    async def run_query(
        self,
        dense: npt.NDArray[np.float32] | None,
        sparse: npt.NDArray[np.int64],
        batch_items: int,
        arrival_s: float | None = None,
    ) -> npt.NDArray[np.float32]:
        """Score one query split into requests of `batch_items`; returns FP32 [N, K] in order."""
        items = int(sparse.shape[0])
        ranges = requests_for(items, batch_items)
        with self._pending_lock:
            if self._pending + len(ranges) > self._max_queue_requests:
                raise UnavailableError(
                    f"overloaded: {self._pending} requests queued, this query needs {len(ranges)} "
                    f"more, limit {self._max_queue_requests}",
                    retry_after_ms=self._retry_after_ms,
                    reason="overloaded",
                )
            self._pending += len(ranges)
        loop = asyncio.get_running_loop()
        query = _Query(
            dense=None if dense is None else torch.from_numpy(dense),
            sparse=torch.from_numpy(sparse),
            scores=np.empty((items, self._model.spec.output_width), dtype=np.float32),
            arrival_s=self._clock() if arrival_s is None else arrival_s,
            remaining=len(ranges),
            loop=loop,
            future=loop.create_future(),
        )
        now_s = self._clock()
        for start, stop in ranges:
            self._queue.put(_Request(query, start, stop, now_s))
        self._metrics.queued_requests.set(self._pending)
        self._metrics.query_items.observe(items)
        return await query.future

    def _work(self, index: int) -> None:
        # On a GPU each worker gets its own stream, so copies and kernels of different requests
        # overlap and several in flight keep the device busy.
        stream_context = (
            torch.cuda.stream(torch.cuda.Stream(self._device))  # type: ignore[no-untyped-call]
            if self._device.type == "cuda"
            else contextlib.nullcontext()
        )
        with stream_context:
            self._serve(index)

    def _serve(self, index: int) -> None:
        while True:
            if index >= self._target_workers:
                # Decide under the lock, so a resize racing with this exit never loses a worker.
                with self._resize_lock:
                    if index >= self._target_workers:
                        del self._threads[index]
                        return
            try:
                request = self._queue.get(timeout=_IDLE_POLL_S)
            except queue.Empty:
                continue
            with self._pending_lock:
                self._pending -= 1
            self._run_request(request)

    def _run_request(self, request: _Request) -> None:
        query = request.query
        started_s = self._clock()
        error: BaseException | None = None
        try:
            with torch.inference_mode():
                dense = query.dense
                if dense is not None:
                    dense = self._to_device(dense[request.start : request.stop])
                sparse = self._to_device(query.sparse[request.start : request.stop])
                scores = self._scorer(dense, sparse)
                query.scores[request.start : request.stop] = scores.cpu().numpy()
        except Exception as failure:  # a model bug must fail the query, not kill the worker
            logger.exception("model failed on a request of %d items", request.stop - request.start)
            error = failure
        finished_s = self._clock()
        items = request.stop - request.start
        if self._emulation is not None:
            # The GPU's clock, not the host's: queue on the virtual device, serve for the
            # profiled time; never earlier than the scores exist.
            service_s = self._emulation.latency_for(items)
            started_s, gpu_done_s = self._virtual_gpu.schedule(request.enqueued_s, service_s)
            self._metrics.emulation_lag.observe(max(0.0, finished_s - gpu_done_s))
            finished_s = max(finished_s, gpu_done_s)
        self._metrics.queue_wait.observe(started_s - request.enqueued_s)
        self._metrics.request_compute.observe(finished_s - started_s)
        self._metrics.request_batch_items.observe(items)
        with query.lock:
            query.remaining -= 1
            last = query.remaining == 0
            first_failure = error is not None and not query.failed
            if error is not None:
                query.failed = True
        if first_failure and error is not None:
            query.loop.call_soon_threadsafe(_fail, query.future, error)
        elif last and not query.failed:
            query.loop.call_soon_threadsafe(self._complete_at, query, finished_s)

    def _complete_at(self, query: _Query, finished_s: float) -> None:
        """Runs on the event loop: resolve the query now, or when the emulated GPU is done."""
        delay_s = finished_s - self._clock()
        if delay_s > 0:
            query.loop.call_later(delay_s, self._complete_at, query, finished_s)
            return
        self._metrics.query_duration.observe(finished_s - query.arrival_s)
        _succeed(query.future, query.scores)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if self._device.type == "cuda":
            # Pinned host memory lets the copy run asynchronously on the worker's stream.
            return tensor.pin_memory().to(self._device, non_blocking=True)
        return tensor


def _succeed(
    future: asyncio.Future[npt.NDArray[np.float32]], scores: npt.NDArray[np.float32]
) -> None:
    if not future.done():
        future.set_result(scores)


def _fail(future: asyncio.Future[npt.NDArray[np.float32]], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def configure_process_threads(gil_switch_interval_s: float) -> None:
    """One intra-op thread per worker: parallelism comes from the worker pool (task level).

    A short GIL switch interval stops the event loop thread from starving workers, which need the
    GIL briefly between torch ops.
    """
    sys.setswitchinterval(gil_switch_interval_s)
    torch.set_num_threads(1)
    # Raises once inter-op work has started in this process; one setting per process is enough.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
