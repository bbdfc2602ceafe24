"""The zoo on CUDA: a model moved by the caller scores like on the CPU. Skipped without CUDA."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import Tensor

from recsched_pod.models import MODEL_NAMES, RecommendationModel, build_model, random_query

SCALE = 0.01
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
    pytest.mark.timeout(120),
]


def score(model: RecommendationModel, dense: Tensor | None, sparse: Tensor) -> Tensor:
    with torch.inference_mode():
        return model(dense, sparse)


def to_cuda(dense: Tensor | None, sparse: Tensor) -> tuple[Tensor | None, Tensor]:
    return (None if dense is None else dense.cuda()), sparse.cuda()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_moved_to_cuda_scores_like_on_cpu(name: str) -> None:
    model = build_model(name, scale=SCALE)
    dense, sparse = random_query(model.spec, 512, torch.Generator().manual_seed(1))
    on_cpu = score(model, dense, sparse)
    on_gpu = score(model.to("cuda"), *to_cuda(dense, sparse))
    assert on_gpu.device.type == "cuda"
    assert on_gpu.shape == on_cpu.shape
    # cuDNN RNNs may use TF32 by default: a looser bound than CPU-vs-CPU.
    assert torch.allclose(on_gpu.cpu(), on_cpu, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["din", "dien", "mtwnd"])
def test_threads_sharing_one_cuda_model_get_the_scores_of_serial_calls(name: str) -> None:
    model = build_model(name, scale=SCALE).to("cuda")
    generator = torch.Generator().manual_seed(2)
    queries = [to_cuda(*random_query(model.spec, 64, generator)) for _ in range(8)]
    serial = [score(model, dense, sparse) for dense, sparse in queries]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda q: score(model, *q), queries))
    for expected, got in zip(serial, threaded, strict=True):
        assert torch.allclose(expected, got, rtol=1e-5, atol=1e-6)
