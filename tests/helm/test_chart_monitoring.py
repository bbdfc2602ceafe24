"""The chart's monitoring extras: PodMonitor, PrometheusRule, dashboard ConfigMap, ServiceMonitor.

Rendered by Helm's engine, built-in kinds checked with `kubernetes-validate`, the Prometheus
Operator kinds checked strictly against their CRD schemas (vendored in tests/monitoring/crds/,
version in its README). Each extra is off by default, reads its one source file in the chart
(.Files.Get: rules/recsched.rules.yaml, dashboards/recsched.json), and the PodMonitor selects every
pod the operator renders, on the port and path its scrape annotations name.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from recsched_operator.cli import load_recmodel, render_recmodel
from support.chart_rbac import CHART, render_chart

ROOT = Path(__file__).parents[2]
CRDS = ROOT / "tests" / "monitoring" / "crds"
OPERATOR_KINDS = {
    "PodMonitor": "podmonitors",
    "ServiceMonitor": "servicemonitors",
    "PrometheusRule": "prometheusrules",
}
ALL_ON = {
    "monitoring": {
        "podMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True, "annotations": {"grafana_folder": "RecSched"}},
    },
    "metrics": {"serviceMonitor": {"enabled": True}},
}


def strict(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever it lists properties (as the API server's
    strict field validation does; CRD schemas leave additionalProperties open)."""
    schema = copy.deepcopy(schema)
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and pattern.startswith("^(?i)"):
            # Go's RE2 takes inline flags anywhere; Python's re only at the start.
            schema["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
        return {key: strict(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def validate_operator_kind(obj: dict[str, Any]) -> None:
    crd = json.loads(
        (CRDS / f"{OPERATOR_KINDS[obj['kind']]}.monitoring.coreos.com.json").read_text()
    )
    assert obj["apiVersion"] == crd["apiVersion"]
    jsonschema.validate(obj, strict(crd["openAPIV3Schema"]))


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, [o["kind"] for o in objects]
    return found[0]


@pytest.mark.parametrize(
    "values",
    [ALL_ON, {**ALL_ON, "rbac": {"scope": "namespace", "watchNamespaces": ["team-a"]}}],
    ids=["cluster-scope", "namespace-scope"],
)
def test_every_rendered_object_validates_against_its_schema(values: dict[str, Any]) -> None:
    objects = render_chart(values)
    kinds = {o["kind"] for o in objects}
    assert set(OPERATOR_KINDS) <= kinds and "ConfigMap" in kinds
    for obj in objects:
        if obj["kind"] in OPERATOR_KINDS:
            validate_operator_kind(obj)
        elif obj["kind"] not in {"ClusterKopfPeering", "KopfPeering"}:
            kubernetes_validate.validate(obj, "1.33.0", strict=True)


def test_strict_crd_validation_rejects_a_misspelt_field() -> None:
    monitor = one(render_chart(ALL_ON), "PodMonitor")
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        validate_operator_kind(monitor)


def test_monitoring_extras_are_off_by_default() -> None:
    kinds = [o["kind"] for o in render_chart()]
    assert not {"PodMonitor", "PrometheusRule", "ServiceMonitor", "ConfigMap"} & set(kinds)


def test_prometheus_rule_is_the_rules_file_verbatim() -> None:
    rule = one(render_chart(ALL_ON), "PrometheusRule")
    source = yaml.safe_load((CHART / "rules" / "recsched.rules.yaml").read_text())
    assert rule["spec"] == source
    assert (
        "{{ $labels.recmodel }}" in rule["spec"]["groups"][0]["rules"][0]["annotations"]["summary"]
    )


def test_dashboard_configmap_is_the_dashboard_file_for_the_grafana_sidecar() -> None:
    values = copy.deepcopy(ALL_ON)
    values["monitoring"]["dashboard"]["namespace"] = "grafana"
    configmap = one(render_chart(values), "ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "grafana"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "RecSched"}
    source = (CHART / "dashboards" / "recsched.json").read_text()
    assert json.loads(configmap["data"]["recsched.json"]) == json.loads(source)


def test_service_monitor_keeps_the_operators_namespace_and_recmodel_labels() -> None:
    monitor = one(render_chart(ALL_ON), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        if expression["operator"] == "Exists" and value is None:
            return False
        if expression["operator"] == "In" and value not in expression["values"]:
            return False
    return True


def test_pod_monitor_selects_every_router_and_pool_pod_the_operator_renders() -> None:
    monitor = one(render_chart(ALL_ON), "PodMonitor")
    recmodel = load_recmodel(ROOT / "crds" / "examples" / "recmodel-cpu-gpu.yaml")
    templates = [
        o["spec"]["template"] for o in render_recmodel(recmodel) if o["kind"] == "Deployment"
    ]
    roles = {t["metadata"]["labels"]["recsched.io/pool"] for t in templates}
    assert roles == {"router", "cpu", "gpu"}
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    for template in templates:
        assert matches(monitor["spec"]["selector"], template["metadata"]["labels"])
        ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        annotations = template["metadata"]["annotations"]
        assert ports[endpoint["port"]] == int(annotations["prometheus.io/port"])
        assert endpoint["path"] == annotations["prometheus.io/path"]
    assert not matches(monitor["spec"]["selector"], {"app.kubernetes.io/name": "recsched"})


def test_pod_monitor_adds_namespace_and_leaves_recmodel_and_pool_to_the_metrics() -> None:
    cluster = one(render_chart(ALL_ON), "PodMonitor")
    relabelings = cluster["spec"]["podMetricsEndpoints"][0]["relabelings"]
    targets = {r["targetLabel"]: r["sourceLabels"] for r in relabelings}
    assert targets["namespace"] == ["__meta_kubernetes_namespace"]
    # A target label named like a metric label renames the metric's (exported_pool).
    assert not {"recmodel", "pool", "le", "reason"} & set(targets)
    assert cluster["spec"]["namespaceSelector"] == {"any": True}
    assert cluster["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    scoped = one(
        render_chart({**ALL_ON, "rbac": {"scope": "namespace", "watchNamespaces": ["a", "b"]}}),
        "PodMonitor",
    )
    assert scoped["spec"]["namespaceSelector"] == {"matchNames": ["a", "b"]}


@pytest.mark.parametrize(
    "values",
    [
        {"monitoring": {"podMonitor": {"enable": True}}},
        {"monitoring": {"prometheusRules": {"enabled": True}}},
        {"monitoring": {"dashboard": {"enabled": "yes"}}},
        {"monitoring": {"dashboard": {"namespace": "Grafana"}}},
        {"monitoring": {"podMonitor": {"interval": "15"}}},
        {"metrics": {"serviceMonitor": {"honorLabel": True}}},
    ],
)
def test_values_schema_rejects_typos_in_monitoring_keys(values: dict[str, Any]) -> None:
    chart = helm.Chart.load(str(CHART))
    with pytest.raises(helm.HelmError):
        chart.validate_schema(values)


def test_chart_with_every_monitoring_extra_lints_clean_in_strict_mode() -> None:
    report = helm.lint(str(CHART), ALL_ON, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
