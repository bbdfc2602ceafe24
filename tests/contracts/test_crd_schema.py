"""The RecModel CRD against itself, the operator's pydantic spec, and the examples.

The emulator enforces no schema, so this is where the CRD is checked: structural (every node
typed), every field described, defaults identical to the pydantic defaults (by defaulting a
minimal object the way the API server does and parsing both), examples valid on both sides.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from recsched_operator.recmodel.api import parse_spec

ROOT = Path(__file__).parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "recmodels.recsched.io.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
EXAMPLES = sorted((ROOT / "crds" / "examples").glob("*.yaml"))
MINIMAL_SPEC = {"model": {"name": "rmc1", "image": "img"}, "slo": {"targetMs": 10}}


def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: fill absent properties, recurse."""
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    result = dict(value)
    for name, child in schema["properties"].items():
        if name not in result and "default" in child:
            result[name] = copy.deepcopy(child["default"])
        if name in result:
            result[name] = apply_defaults(child, result[name])
    return result


def crd_validator() -> jsonschema.Draft4Validator:
    # Kubernetes' OpenAPI v3.0 subset uses boolean exclusiveMinimum, i.e. draft-4 semantics.
    return jsonschema.Draft4Validator(SCHEMA)


def test_schema_is_structural_and_every_field_is_described() -> None:
    for path, node in walk(SCHEMA, "recmodel"):
        if path == "recmodel.metadata":
            continue
        typed = "type" in node or node.get("x-kubernetes-int-or-string")
        assert typed, f"{path} has no type"
        if not path.endswith("{}"):  # map values are described by their map
            assert node.get("description"), f"{path} has no description"


def test_names_columns_and_subresource() -> None:
    names = CRD["spec"]["names"]
    assert names["shortNames"] == ["rm"] and "recsched" in names["categories"]
    assert VERSION["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in VERSION["additionalPrinterColumns"]}
    for name in ("Model", "SLO-ms", "P95-ms", "Batch", "Threshold", "Phase", "Age"):
        assert name in columns and columns[name].get("priority", 0) == 0, name
    assert all(columns[name]["priority"] == 1 for name in ("Mode", "Ready", "QPS"))
    conditions = SCHEMA["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_crd_defaults_equal_the_pydantic_defaults() -> None:
    defaulted = apply_defaults(SCHEMA["properties"]["spec"], MINIMAL_SPEC)
    assert defaulted["tuning"]["batchSize"] == {"min": 1, "max": 1024, "initial": 64}
    assert parse_spec(defaulted) == parse_spec(MINIMAL_SPEC)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_examples_validate_against_crd_and_pydantic(example: Path) -> None:
    document = yaml.safe_load(example.read_text())
    crd_validator().validate(document)
    defaulted = apply_defaults(SCHEMA["properties"]["spec"], document["spec"])
    assert parse_spec(defaulted) == parse_spec(document["spec"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"name": "bert", "image": "i"}}, "is not one of"),
        ({"slo": {"targetMs": 10, "percentile": 90}}, "is not one of"),
        ({"tuning": {"mode": "fast"}}, "is not one of"),
        ({"pools": {"cpu": {"replicas": -1}}}, "less than the minimum"),
        ({"prometheusUrl": "prometheus:9090"}, "does not match"),
    ],
)
def test_schema_rejects_what_it_can(change: dict[str, Any], message: str) -> None:
    document = {
        "apiVersion": "recsched.io/v1alpha1",
        "kind": "RecModel",
        "metadata": {"name": "x"},
        "spec": {**MINIMAL_SPEC, **change},
    }
    errors = [e.message for e in crd_validator().iter_errors(document)]
    assert any(message in e for e in errors), errors
