"""The config document's wire format, one module per side, each checked against the other.

The operator writes documents (`recsched_operator.recmodel.config_document`: the ConfigMap, the
push, local mode's file) that the pod reads (`recsched_pod.config_document`), and reads back what
it wrote. The load test owns no copy at all: it pushes through the pod's `PUT /admin/config`, and
the JSON it sends must be the operator's. The components never import each other, so only a test
that imports both can hold them together.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from recsched_loadtest.oip_client import push_config
from recsched_operator.cli import render_recmodel
from recsched_operator.recmodel import config_document as operator_side
from recsched_operator.recmodel.api import parse_spec
from recsched_pod import config_document as pod_side
from recsched_pod.router.app import create_router_app
from recsched_pod.settings import PodSettings
from support.asgi_server import serve_app

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "crds" / "examples").glob("*.yaml"))
TOKEN = "contract-token"
DOCUMENTS = [
    operator_side.ConfigDocument(1, 64, 1025, 4),
    operator_side.ConfigDocument(7, 1, 1, 1),
    operator_side.ConfigDocument(2**31, 4096, 64, 256),
]
INVALID = [
    ({"generation": -1, "batchSize": 64, "offloadThreshold": 1025, "workers": 1}, "generation"),
    ({"generation": 1, "batchSize": 0, "offloadThreshold": 1025, "workers": 1}, "batchSize"),
    ({"generation": 1, "batchSize": 64, "offloadThreshold": 0, "workers": 1}, "offloadThreshold"),
    ({"generation": 1, "batchSize": 64, "offloadThreshold": 1025, "workers": 0}, "workers"),
    ({"generation": 1, "batchSize": "many", "offloadThreshold": 1025, "workers": 1}, "batchSize"),
]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_the_pod_reads_the_configmap_the_operator_renders(example: Path) -> None:
    recmodel = yaml.safe_load(example.read_text(encoding="utf-8"))
    spec = parse_spec(recmodel["spec"])
    configmap = next(c for c in render_recmodel(recmodel) if c["kind"] == "ConfigMap")
    (text,) = configmap["data"].values()
    served = pod_side.parse_config_document(text.encode(), "ConfigMap")
    expected = operator_side.initial_config(spec)
    assert (served.generation, served.batch_size, served.offload_threshold, served.workers) == (
        expected.generation,
        expected.batch_size,
        expected.offload_threshold,
        expected.workers,
    )
    assert operator_side.config_from_configmap(configmap) == expected


@pytest.mark.parametrize("document", DOCUMENTS, ids=str)
def test_each_side_reads_what_the_other_writes(document: operator_side.ConfigDocument) -> None:
    on_the_pod = pod_side.parse_config_document(document.to_json().encode(), "operator")
    assert on_the_pod.to_json_dict() == document.to_json_dict()
    back = operator_side.parse_config_document(json.dumps(on_the_pod.to_json_dict()), "pod")
    assert back == document
    following = document.next(batch_size=32, offload_threshold=128)
    assert following.generation == document.generation + 1 and following.workers == document.workers


@pytest.mark.parametrize(("document", "field"), INVALID, ids=lambda value: str(value)[:40])
def test_both_sides_reject_the_same_bad_values_naming_the_field(
    document: dict[str, Any], field: str
) -> None:
    with pytest.raises(pod_side.ConfigDocumentError, match=field):
        pod_side.parse_config_document(json.dumps(document), "test")
    with pytest.raises(operator_side.ConfigDocumentError, match=field):
        operator_side.parse_config_document(json.dumps(document), "test")


@pytest.mark.parametrize("text", ["not json", "[1, 2]"])
def test_both_sides_reject_what_is_not_a_json_object(text: str) -> None:
    with pytest.raises(pod_side.ConfigDocumentError):
        pod_side.parse_config_document(text, "test")
    with pytest.raises(operator_side.ConfigDocumentError):
        operator_side.parse_config_document(text, "test")


def test_the_load_test_pushes_the_operators_document_through_the_pods_admin_route(
    tmp_path: Path,
) -> None:
    """`recsched-loadtest sweep` changes knobs through `PUT /admin/config` of a real process
    (a router: the same admin routes as a pod, no model to load)."""
    start = operator_side.ConfigDocument(3, 64, 1025, 2)
    config_path = tmp_path / "config.json"
    config_path.write_text(start.to_json(), encoding="utf-8")
    settings = PodSettings(
        role="router",
        cpu_endpoints="127.0.0.1:9",
        config_path=config_path,
        admin_token=TOKEN,
    )
    with serve_app(create_router_app(settings)) as url:
        served = asyncio.run(push_config(url, TOKEN, {"batchSize": 32}))
    assert served == start.next(batch_size=32, offload_threshold=1025).to_json_dict()
    assert operator_side.parse_config_document(served, "pod") == operator_side.ConfigDocument(
        4, 32, 1025, 2
    )
