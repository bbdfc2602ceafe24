"""Worker pinning: which CPUs the policy picks, and that the pool's threads really run there,
following resizes (the measured effect is in docs/benchmarks/pinning.md)."""

from __future__ import annotations

import os
import threading

import pytest
import torch
from pydantic import ValidationError

from recsched_pod.cli import settings_from_args
from recsched_pod.dataplane.engine import WorkerPool, allowed_cpus, worker_cpus
from recsched_pod.metrics import PodMetrics
from recsched_pod.models.base import RecommendationModel
from recsched_pod.models.spec import ModelInputSpec
from recsched_pod.settings import PinPolicy


class ConstantModel(RecommendationModel):
    def __init__(self) -> None:
        super().__init__(
            ModelInputSpec(
                name="constant",
                dense_features=0,
                table_rows=(10,),
                lookups_per_table=1,
                output_width=1,
            )
        )

    def forward(self, dense: torch.Tensor | None, sparse: torch.Tensor) -> torch.Tensor:
        return torch.zeros(int(sparse.shape[0]), 1)


@pytest.mark.parametrize(
    ("policy", "workers", "allowed", "expected"),
    [
        ("auto", 2, {0, 1}, [0, 1]),  # an exclusive cpuset of 2 for 2 workers
        ("auto", 4, {2, 3}, [2, 3, 2, 3]),  # more workers than CPUs: round robin
        ("auto", 2, set(range(8)), None),  # a shared CPU set: the kernel places them
        ("auto", 1, {5}, None),  # one CPU: nothing to choose
        ("on", 3, set(range(8)), [0, 1, 2]),
        ("on", 2, set(), None),  # a platform without affinity
        ("off", 2, {0, 1}, None),
    ],
)
def test_worker_cpus_pins_on_an_exclusive_cpuset_or_when_asked(
    policy: PinPolicy, workers: int, allowed: set[int], expected: list[int] | None
) -> None:
    assert worker_cpus(policy, workers, frozenset(allowed)) == expected


def affinity_by_worker() -> dict[int, set[int]]:
    found = {}
    for thread in threading.enumerate():
        if thread.name.startswith("model-worker-") and thread.native_id is not None:
            found[int(thread.name.rsplit("-", 1)[1])] = os.sched_getaffinity(thread.native_id)
    return found


@pytest.mark.skipif(len(allowed_cpus()) < 2, reason="needs thread affinity and at least 2 CPUs")
def test_auto_pinning_follows_resizes_and_gives_cpus_back_when_workers_shrink() -> None:
    cpus = frozenset(sorted(allowed_cpus())[:2])
    model = ConstantModel()
    pool = WorkerPool(
        model,
        torch.device("cpu"),
        PodMetrics("t", "cpu", "cpu"),
        workers=1,
        max_queue_requests=100,
        retry_after_ms=50,
        pin="auto",
        cpus=cpus,
    )
    try:
        first, second = sorted(cpus)
        assert pool.placement is None  # 2 CPUs for 1 worker: not exclusive, left alone
        assert affinity_by_worker()[0] >= cpus
        pool.resize(2)
        assert pool.placement == [first, second]
        assert affinity_by_worker() == {0: {first}, 1: {second}}
        pool.resize(1)  # worker 1 leaves at its next poll; worker 0 gets both CPUs back at once
        assert pool.placement is None
        assert affinity_by_worker()[0] >= cpus
    finally:
        pool.close()


def test_pin_policy_comes_from_the_flag_and_a_bad_value_names_the_field() -> None:
    settings, _ = settings_from_args(["--pin-workers", "off"])
    assert settings.pin_workers == "off"
    assert settings_from_args([])[0].pin_workers == "auto"
    with pytest.raises(ValidationError, match="pin_workers"):
        type(settings)(pin_workers="sometimes")
