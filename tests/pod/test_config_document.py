"""The pod's side of the config document: one parser for the `--config` file and for pushes,
errors that name the field, unknown fields kept (a newer tuner may add some), and a bad file that
stops start-up with one line instead of a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsched_pod.cli import main
from recsched_pod.config_document import ConfigDocumentError, parse_config_document
from recsched_pod.live_config import ConfigFileError, read_config_file

VALID = {"generation": 3, "batchSize": 32, "offloadThreshold": 256, "workers": 2}


def test_unknown_fields_are_kept_and_served_back() -> None:
    document = parse_config_document(json.dumps({**VALID, "newKnob": 5}), "test")
    assert document.batch_size == 32
    assert document.to_json_dict() == {**VALID, "newKnob": 5}


@pytest.mark.parametrize(
    ("text", "problem"),
    [("{", "not valid JSON"), ("[]", "must be a JSON object"), ('{"workers": 0}', "workers")],
)
def test_errors_name_the_source_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ConfigDocumentError, match=problem) as error:
        parse_config_document(text, "PUT /admin/config")
    assert str(error.value).startswith("PUT /admin/config: ")


def test_a_bad_config_file_is_a_file_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**VALID, "batchSize": 0}), encoding="utf-8")
    with pytest.raises(ConfigFileError, match="batchSize") as error:
        read_config_file(path)
    assert str(path) in str(error.value)
    with pytest.raises(ConfigFileError, match="cannot read"):
        read_config_file(tmp_path / "missing.json")


def test_a_bad_config_file_stops_start_up_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**VALID, "offloadThreshold": 0}), encoding="utf-8")
    argv = ["--role", "router", "--cpu-endpoints", "127.0.0.1:9", "--config", str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("recsched-pod: ") and "offloadThreshold" in err and str(path) in err
    assert "Traceback" not in err
