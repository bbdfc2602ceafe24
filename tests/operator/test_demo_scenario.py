"""The demo's scripted scenario as data: phases fill the requested time in order, the start config
is measured for a full SLO window before tuning, load processes change only with the size mix,
and the SLO edit reaches the tuner through the run's manifest copy."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from recsched_operator.local.scenario import (
    DemoLoad,
    Phase,
    demo_phases,
    load_runs,
    phase_at,
    timeline,
)
from recsched_operator.local.scenario_run import ManifestWatch, edit_slo_target, load_argv
from recsched_operator.local.session import load_spec

EXAMPLE = Path(__file__).parents[2] / "crds" / "examples" / "recmodel-local-demo.yaml"


def test_demo_phases_fill_the_duration_in_the_documented_order() -> None:
    phases = demo_phases(150.0, 10.0, DemoLoad(qps=10.0, edited_target_ms=80.0))
    assert [p.name for p in phases] == [
        "start config",
        "steady",
        "load step",
        "large queries",
        "SLO edit",
    ]
    assert sum(p.duration_s for p in phases) == pytest.approx(150.0, abs=0.5)
    start, steady, step, large, edit = phases
    assert not start.tuning and all(p.tuning for p in phases[1:])
    assert start.duration_s > 10.0  # a whole SLO window lies inside it
    assert (start.qps, steady.qps, step.qps) == (10.0, 10.0, 15.0)
    assert large.sizes != steady.sizes and large.qps == pytest.approx(0.6 * step.qps)
    assert edit.target_ms == 80.0 and edit.sizes == large.sizes
    assert steady.duration_s > step.duration_s  # the first search starts from the worst corner


def test_without_an_edited_target_there_is_no_slo_edit_phase() -> None:
    phases = demo_phases(100.0, 10.0, DemoLoad(qps=10.0, large_qps_factor=0.5))
    assert [p.name for p in phases][-1] == "large queries"
    assert phases[-1].qps == pytest.approx(7.5)
    assert all(p.target_ms is None for p in phases)


def test_a_duration_too_short_for_one_window_per_phase_is_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        demo_phases(40.0, 10.0, DemoLoad(qps=10.0, edited_target_ms=50.0))


def test_load_processes_change_only_with_the_size_mix() -> None:
    phases = demo_phases(150.0, 10.0, DemoLoad(qps=8.0, edited_target_ms=60.0))
    runs = load_runs(phases)
    assert [r.sizes for r in runs] == ["production", "lognormal:5.8,0.6"]
    first, second = runs
    assert first.profile().startswith("8:14,8:") and first.segments[-1][0] == 12.0
    timed = timeline(phases)
    assert second.start_s == pytest.approx(timed[3].start_s)
    assert first.duration_s + second.duration_s == pytest.approx(timed[-1].end_s)
    argv = load_argv("py", "http://127.0.0.1:1", "wnd", second, "constant", seed=2)
    pairs = set(itertools.pairwise(argv))
    assert ("--profile", second.profile()) in pairs
    assert ("--arrivals", "constant") in pairs and ("--sizes", "lognormal:5.8,0.6") in pairs


def test_phase_at_finds_the_running_phase_and_none_outside() -> None:
    timed = timeline([Phase("a", 10, 1, "production"), Phase("b", 5, 2, "production")])
    assert phase_at(timed, 0.0) is timed[0]
    assert phase_at(timed, 10.0) is timed[1]
    assert phase_at(timed, 15.0) is None
    assert phase_at(timed, -1.0) is None


def test_an_slo_edit_in_the_manifest_copy_reaches_the_watch(tmp_path: Path) -> None:
    manifest = tmp_path / "recmodel.yaml"
    manifest.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    watch = ManifestWatch(manifest, load_spec)
    assert watch.changed_spec() is None
    edit_slo_target(manifest, 42.0)
    spec = watch.changed_spec()
    assert spec is not None and spec.slo.target_ms == 42.0
    assert watch.changed_spec() is None  # reported once
    document = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    assert document["metadata"]["name"] == "ncf-demo"  # the rest of the manifest is kept


def test_a_broken_manifest_edit_is_ignored_not_fatal(tmp_path: Path) -> None:
    manifest = tmp_path / "recmodel.yaml"
    manifest.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    watch = ManifestWatch(manifest, load_spec)
    manifest.write_text("kind: RecModel\nmetadata: {name: x}\nspec: {slo: {}}\n", encoding="utf-8")
    assert watch.changed_spec() is None
