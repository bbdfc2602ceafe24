"""The Helm chart, linted and rendered offline by Helm's own engine (helm-python-sdk).

Rendered objects are validated against the official Kubernetes schemas; the values schema must
reject typos; the chart's RecModel CRD must be byte-identical to `crds/` (one source of truth).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from support.chart_rbac import CHART, granted_permissions, render_chart

ROOT = Path(__file__).parents[2]
CUSTOM_KINDS = {"ServiceMonitor", "ClusterKopfPeering", "KopfPeering"}


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_chart_lints_clean_in_strict_mode() -> None:
    report = helm.lint(str(CHART), strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_crd_is_the_crds_folder_copy() -> None:
    source = (ROOT / "crds" / "recmodels.recsched.io.yaml").read_bytes()
    assert (CHART / "crds" / "recmodels.recsched.io.yaml").read_bytes() == source


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"rbac": {"scope": "namespace", "watchNamespaces": ["team-a", "team-b"]}},
        {"metrics": {"serviceMonitor": {"enabled": True}}},
    ],
    ids=["defaults", "namespace-scope", "servicemonitor"],
)
def test_rendered_objects_are_valid_kubernetes(values: dict[str, Any]) -> None:
    objects = render_chart(values)
    assert objects
    for obj in objects:
        if obj["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(obj, "1.33.0", strict=True)


def test_defaults_are_cluster_scoped_restricted_and_probed() -> None:
    objects = render_chart()
    assert {o["kind"] for o in objects} == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterKopfPeering",
        "Deployment",
        "Service",
    }
    pod = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["run", "--all-namespaces", "--peering=recsched"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["ports"][0]["containerPort"] == 8080
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    selector = by_kind(objects, "Deployment")[0]["spec"]["selector"]["matchLabels"]
    assert "helm.sh/chart" not in selector and "app.kubernetes.io/version" not in selector


def test_namespace_scope_grants_roles_only_where_watched() -> None:
    values = {"rbac": {"scope": "namespace", "watchNamespaces": ["team-a", "team-b"]}}
    objects = render_chart(values)
    assert not by_kind(objects, "ClusterRole")
    assert sorted(r["metadata"]["namespace"] for r in by_kind(objects, "Role")) == [
        "team-a",
        "team-b",
    ]
    args = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    cluster = {(g, r, v) for g, r, v in granted_permissions(render_chart()) if g != "kopf.dev"}
    namespaced = {(g, r, v) for g, r, v in granted_permissions(objects) if g != "kopf.dev"}
    assert cluster == namespaced


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCont": 2},
        {"rbac": {"scope": "everywhere"}},
        {"metrics": {"port": "8080"}},
        {"operator": {"prometheusUrl": "prometheus:9090"}},
        {"image": {"tag": "1", "repo": "x"}},
    ],
)
def test_values_schema_rejects_typos_and_bad_values(values: dict[str, Any]) -> None:
    chart = helm.Chart.load(str(CHART))
    with pytest.raises(helm.HelmError):
        chart.validate_schema(values)


def test_service_monitor_is_off_by_default() -> None:
    assert not by_kind(render_chart(), "ServiceMonitor")
    monitors = by_kind(
        render_chart({"metrics": {"serviceMonitor": {"enabled": True}}}), "ServiceMonitor"
    )
    assert monitors[0]["spec"]["endpoints"][0]["port"] == "http-metrics"
