"""The `recsched-operator` command line: render, local mode's input checks, simulate's wiring."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recsched_operator.cli import build_parser, main

EXAMPLE = Path(__file__).parents[2] / "crds" / "examples" / "recmodel-local-demo.yaml"


def test_local_mode_refuses_an_invalid_manifest_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(re.sub(r"targetMs: \d+", "targetMs: -5", EXAMPLE.read_text()))
    assert main(["local", str(bad), "--run-dir", str(tmp_path / "run")]) == 1
    error = capsys.readouterr().err
    assert "invalid spec" in error and "spec.slo.targetMs" in error
    assert not (tmp_path / "run").exists()


def test_local_mode_refuses_a_file_that_is_not_a_recmodel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "deployment.yaml"
    other.write_text("kind: Deployment\nmetadata: {name: x}\n")
    assert main(["local", str(other)]) == 2
    assert "not a RecModel manifest" in capsys.readouterr().err


def test_render_rejects_an_invalid_spec_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    initial = r"(batchSize: \{min: \d+, max: \d+, initial: )\d+"
    bad.write_text(re.sub(initial, r"\g<1>5000", EXAMPLE.read_text()))
    assert main(["render", str(bad)]) == 2
    assert "spec.tuning.batchSize.initial" in capsys.readouterr().err


def test_run_accepts_kopf_scope_flags() -> None:
    args = build_parser().parse_args(["run", "--standalone", "-n", "a", "-n", "b", "--verbose"])
    assert (args.standalone, args.namespaces, args.verbose) == (True, ["a", "b"], True)


def test_simulate_is_wired_into_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["simulate", "--help"])
    assert caught.value.code == 0
    assert "simulate" in capsys.readouterr().out
