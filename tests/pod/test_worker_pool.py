"""The worker pool: DeepRecSched splitting, order of scores, live resizing, bounded admission,
and a failing model that fails its query without killing the worker."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
import torch

from recsched_pod.dataplane.engine import WorkerPool, requests_for
from recsched_pod.errors import UnavailableError
from recsched_pod.metrics import PodMetrics
from recsched_pod.models.base import RecommendationModel
from recsched_pod.models.spec import ModelInputSpec
from support.waiting import eventually

SPEC = ModelInputSpec(
    name="probe", dense_features=0, table_rows=(1000,), lookups_per_table=1, output_width=1
)


class ProbeModel(RecommendationModel):
    """Scores each item by its index value; records request sizes and concurrent calls. While
    `gate` is cleared, each request waits for it (bounded) once recorded, so a test can hold
    requests on the workers for exactly as long as it needs."""

    def __init__(self, delay_s: float = 0.0, fail_on: int | None = None) -> None:
        super().__init__(SPEC)
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.sizes: list[int] = []
        self.active = 0
        self.peak_active = 0
        self._lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()

    def forward(self, dense: torch.Tensor | None, sparse: torch.Tensor) -> torch.Tensor:
        with self._lock:
            self.sizes.append(int(sparse.shape[0]))
            self.active += 1
            self.peak_active = max(self.peak_active, self.active)
        try:
            time.sleep(self.delay_s)  # the subject: a model that takes time
            assert self.gate.wait(timeout=30), "the test never opened the gate"
            if self.fail_on is not None and int(sparse[0, 0, 0]) == self.fail_on:
                raise RuntimeError("injected failure")
            return sparse[:, 0, :1].to(torch.float32)
        finally:
            with self._lock:
                self.active -= 1


def make_pool(model: ProbeModel, workers: int = 2, max_queue_requests: int = 1000) -> WorkerPool:
    return WorkerPool(
        model,
        torch.device("cpu"),
        PodMetrics("t", "cpu", "cpu"),
        workers=workers,
        max_queue_requests=max_queue_requests,
        retry_after_ms=50,
    )


def query(items: int, start: int = 0) -> np.ndarray:
    return np.arange(start, start + items, dtype=np.int64).reshape(items, 1, 1)


@pytest.mark.parametrize(
    ("items", "batch", "expected"),
    [
        (1, 4, [(0, 1)]),
        (8, 4, [(0, 4), (4, 8)]),
        (10, 4, [(0, 4), (4, 8), (8, 10)]),
        (3, 1024, [(0, 3)]),
    ],
)
def test_query_splits_into_ceil_n_over_b_requests(
    items: int, batch: int, expected: list[tuple[int, int]]
) -> None:
    assert requests_for(items, batch) == expected


async def test_scores_come_back_in_item_order_across_requests() -> None:
    model = ProbeModel(delay_s=0.001)
    pool = make_pool(model, workers=2)
    try:
        scores = await pool.run_query(None, query(23, start=100), batch_items=4)
    finally:
        pool.close()
    np.testing.assert_array_equal(scores[:, 0], np.arange(100, 123, dtype=np.float32))
    assert sorted(model.sizes) == sorted([4] * 5 + [3])


async def test_workers_run_requests_of_one_query_in_parallel() -> None:
    model = ProbeModel()
    model.gate.clear()
    pool = make_pool(model, workers=2)
    try:
        running = asyncio.ensure_future(pool.run_query(None, query(8), batch_items=2))
        # Both workers hold one of the query's requests at once: parallel, however slow the
        # machine (a serial pool would never get a second request in while the gate is shut).
        await eventually(lambda: model.active == 2)
        model.gate.set()
        await running
    finally:
        model.gate.set()
        pool.close()
    assert model.peak_active == 2
    assert sorted(model.sizes) == [2, 2, 2, 2]


def live_workers(pool: WorkerPool) -> int:
    """Worker threads the pool still has (surplus ones leave once they notice a shrink)."""
    return len(pool._threads)  # private: thread names are shared by every pool in the process


async def held_peak(model: ProbeModel, pool: WorkerPool, requests: int, workers: int) -> int:
    """Run a query of `requests` one-item requests with the gate shut until `workers` of them are
    on workers at once; returns the peak count of requests running together."""
    model.peak_active = 0
    model.gate.clear()
    running = asyncio.ensure_future(pool.run_query(None, query(requests), batch_items=1))
    try:
        await eventually(lambda: model.active == workers)
    finally:
        model.gate.set()
    await running
    return model.peak_active


async def test_pool_shrinks_and_grows_between_requests() -> None:
    model = ProbeModel()
    pool = make_pool(model, workers=3)
    try:
        pool.resize(1)
        await eventually(lambda: live_workers(pool) == 1)  # idle workers poll every 0.2 s
        assert await held_peak(model, pool, requests=6, workers=1) == 1
        pool.resize(3)
        assert await held_peak(model, pool, requests=6, workers=3) == 3
        alive = [t for t in threading.enumerate() if t.name.startswith("model-worker-")]
        assert len(alive) >= 3
    finally:
        model.gate.set()
        pool.close()


async def test_query_that_would_overflow_the_queue_is_refused_before_any_work() -> None:
    model = ProbeModel()
    model.gate.clear()
    pool = make_pool(model, workers=1, max_queue_requests=4)
    try:
        first = asyncio.ensure_future(pool.run_query(None, query(4), batch_items=1))
        await eventually(lambda: model.sizes == [1])  # held on the worker: 3 still queued
        with pytest.raises(UnavailableError) as refused:
            await pool.run_query(None, query(4), batch_items=1)
        assert refused.value.reason == "overloaded"
        assert refused.value.headers()["Retry-After-Ms"] == "50"
        assert pool.queued_requests == 3, "the refused query queued nothing"
        model.gate.set()
        assert (await first).shape == (4, 1)
        # once drained, the same query fits again
        assert (await pool.run_query(None, query(4), batch_items=1)).shape == (4, 1)
        assert model.sizes == [1] * 8, "only the two admitted queries ran"
    finally:
        model.gate.set()
        pool.close()


async def test_model_failure_fails_its_query_and_the_worker_survives() -> None:
    model = ProbeModel(fail_on=4)
    pool = make_pool(model, workers=1)
    try:
        with pytest.raises(RuntimeError, match="injected failure"):
            await pool.run_query(None, query(8), batch_items=4)
        scores = await pool.run_query(None, query(3, start=10), batch_items=4)
    finally:
        pool.close()
    np.testing.assert_array_equal(scores[:, 0], [10.0, 11.0, 12.0])
