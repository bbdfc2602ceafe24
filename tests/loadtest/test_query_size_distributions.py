"""Query sizes: the distributions' moments and quantiles, clipping, and fresh per-query draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsched_loadtest.errors import SpecError
from recsched_loadtest.sizes import (
    EmpiricalSizes,
    FixedSizes,
    draw_query_sizes,
    parse_empirical_sizes,
    parse_size_spec,
)

DRAWS = 200_000


def _draw(spec: str, seed: int = 1, count: int = DRAWS) -> np.ndarray:
    return draw_query_sizes(parse_size_spec(spec), np.random.default_rng(seed), count)


def test_paper_lognormal_has_mu_5_1_and_sigma_0_2_in_log_space() -> None:
    sizes = _draw("lognormal:5.1,0.2")
    logs = np.log(sizes)
    assert logs.mean() == pytest.approx(5.1, abs=0.005)
    assert logs.std() == pytest.approx(0.2, abs=0.005)
    assert np.median(sizes) == pytest.approx(math.exp(5.1), rel=0.01)  # 164 items
    assert np.array_equal(sizes, _draw("paper"))


def test_production_default_keeps_paper_median_with_a_heavy_tail_clipped_at_1024() -> None:
    sizes = _draw("production")
    assert sizes.min() >= 1 and sizes.max() == 1024
    assert np.median(sizes) == pytest.approx(164, rel=0.02)
    assert np.percentile(sizes, 10) == pytest.approx(58.8, rel=0.03)
    assert np.percentile(sizes, 90) == pytest.approx(457, rel=0.03)
    # P(lognormal(5.1, 0.8) > 1024) = 1 - Phi((ln 1024 - 5.1) / 0.8) = 1.10%
    assert np.mean(sizes == 1024) == pytest.approx(0.0110, abs=0.0015)
    paper_tail = np.percentile(_draw("paper"), 99.9)
    assert paper_tail < 320 < np.percentile(sizes, 99)  # the paper's fit never reaches the tail


def test_normal_sizes_match_mean_and_std_and_clip_at_one() -> None:
    sizes = _draw("normal:300,50")
    assert sizes.mean() == pytest.approx(300, rel=0.005)
    assert sizes.std() == pytest.approx(50, rel=0.01)
    clipped = _draw("normal:10,50")
    assert clipped.min() == 1
    assert np.mean(clipped == 1) == pytest.approx(0.4325, abs=0.005)  # Phi((1.5 - 10) / 50)


def test_fixed_sizes_are_constant() -> None:
    assert set(_draw("fixed:64", count=1000).tolist()) == {64}


def test_empirical_file_is_resampled_with_its_frequencies() -> None:
    distribution = parse_empirical_sizes("# sizes\n10\n10\n10\n500\n\n2000\n", "log.txt")
    assert distribution == EmpiricalSizes((10, 10, 10, 500, 2000), "log.txt")
    sizes = draw_query_sizes(distribution, np.random.default_rng(3), DRAWS)
    values, counts = np.unique(sizes, return_counts=True)
    assert values.tolist() == [10, 500, 1024]  # 2000 is clipped to the maximum query size
    assert (counts / DRAWS) == pytest.approx([0.6, 0.2, 0.2], abs=0.005)


def test_sizes_are_drawn_fresh_per_query_not_a_replayed_handful() -> None:
    sizes = _draw("production", count=10_000)
    assert len(np.unique(sizes)) > 500
    # DeepRecInfra replays 32 sizes per epoch; fresh draws have no period of 32.
    assert not np.array_equal(sizes[:32], sizes[32:64])


def test_same_seed_same_sizes_other_seed_other_sizes() -> None:
    assert np.array_equal(_draw("production", seed=5), _draw("production", seed=5))
    assert not np.array_equal(_draw("production", seed=5), _draw("production", seed=6))


def test_sizes_respect_a_smaller_max_from_metadata() -> None:
    sizes = draw_query_sizes(FixedSizes(900), np.random.default_rng(1), 10, max_items=512)
    assert sizes.tolist() == [512] * 10


@pytest.mark.parametrize(
    "spec", ["lognormal:5.1", "fixed:0", "fixed:2.5", "normal:1,-1", "weibull:1", "file:x"]
)
def test_invalid_size_specs_are_rejected_with_the_spec_in_the_message(spec: str) -> None:
    with pytest.raises(SpecError, match=r"spec|size|file"):
        parse_size_spec(spec)


def test_empirical_file_with_garbage_names_the_line() -> None:
    with pytest.raises(SpecError, match=r"sizes.txt:2"):
        parse_empirical_sizes("5\nabc\n", "sizes.txt")
