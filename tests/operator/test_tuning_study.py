"""Issue 15's wide study, the CI subset: one case per factor level, and the sampling itself.

`bench/tuner_convergence.py` runs the 96 cases of `simulation.study.design` x 3 seeds into
docs/benchmarks/tuner.md. Here four of those cases, chosen so that every level of every factor
but the model appears once (SLO 0.5x/1x/1.5x/3x, p95/p99, heavy/production/lognormal sizes,
50/75/90% load, CPU-only / speedup-table GPU / H200 GPU), each must meet the floor from the
grid corner of lowest capacity: >= 95% of the grid optimum's capacity within 15 decisions, held,
and never more than 2 intervals over target in a row after converging. The models they use
(ncf, din, rmc2) complement test_tuning_convergence.py's (rmc1, wnd, dien, mtwnd).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from recsched_operator.tuner.simulation.profiles import profile_names
from recsched_operator.tuner.simulation.study import (
    CLUSTERS,
    LOADS,
    PERCENTILES,
    SIZE_MIXES,
    SLO_MULTIPLES,
    StudyCase,
    design,
    floor_met,
    prepare,
    run_case,
)

pytestmark = pytest.mark.timeout(240)

GPU_PROFILE = (
    Path(__file__).resolve().parents[2]
    / "inference_pod/src/recsched_pod/gpu_profiles/nvidia-h200.json"
)
CI_CASES = [
    StudyCase("rmc2", 0.5, 99, "heavy", "gpu-h200", 0.9),
    StudyCase("din", 1.0, 95, "lognormal", "cpu-only", 0.75),
    StudyCase("ncf", 1.5, 95, "production", "gpu-table", 0.5),
    StudyCase("ncf", 3.0, 95, "lognormal", "gpu-table", 0.9),
]


def test_the_ci_cases_cover_every_factor_level_and_come_from_the_study_design() -> None:
    assert set(CI_CASES) <= set(design(profile_names()))
    for attribute, levels in (
        ("slo_multiple", SLO_MULTIPLES),
        ("percentile", PERCENTILES),
        ("mix", SIZE_MIXES),
        ("load", LOADS),
        ("cluster", CLUSTERS),
    ):
        assert {getattr(case, attribute) for case in CI_CASES} == set(levels), attribute


def test_the_study_design_puts_every_factor_level_with_every_model() -> None:
    models = profile_names()
    cases = design(models)
    assert len(cases) == 12 * len(models)
    seen: dict[str, set[tuple[str, object]]] = defaultdict(set)
    for case in cases:
        for attribute in ("slo_multiple", "percentile", "mix", "load", "cluster"):
            seen[case.model].add((attribute, getattr(case, attribute)))
    everything = (
        {("slo_multiple", level) for level in SLO_MULTIPLES}
        | {("percentile", level) for level in PERCENTILES}
        | {("mix", level) for level in SIZE_MIXES}
        | {("load", level) for level in LOADS}
        | {("cluster", level) for level in CLUSTERS}
    )
    assert all(seen[model] == everything for model in models)


@pytest.mark.slow
@pytest.mark.parametrize("case", CI_CASES, ids=lambda case: case.describe().replace(" ", "-"))
def test_tuner_meets_the_floor_from_the_worst_corner(case: StudyCase) -> None:
    prepared = prepare(case, GPU_PROFILE)
    assert prepared.capacity.capacity_qps(prepared.start) < 0.5 * prepared.optimum_qps
    run, score = run_case(prepared, seed=1, intervals=30)
    trace = "\n".join(f"{s.index} {s.action}: {s.reason}" for s in run.steps)
    assert score.reached_at is not None and score.reached_at <= 15, trace
    assert score.final_ratio >= 0.95, trace
    assert score.longest_violation_after_converging <= 2, trace
    assert floor_met(score)
