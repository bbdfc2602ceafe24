"""Fast checks without Prometheus: every metric the dashboard and the rules name is one the code
registers (pods, router, operator), and the dashboard's queries come out with every variable filled
in for one RecModel (`recsched_operator.local.dashboard_queries`, what local mode's report
can reuse).
The slow test_promql_against_prometheus.py runs the same expressions against real scrapes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from recsched_operator.local.dashboard_queries import (
    DashboardError,
    chart_dashboard_path,
    load_dashboard,
    panel_queries,
    render_legend,
    substitute,
)
from recsched_operator.metrics import OperatorMetrics
from recsched_pod.metrics import PodMetrics, RouterMetrics

ROOT = Path(__file__).parents[2]
RULES = ROOT / "helm" / "recsched" / "rules" / "recsched.rules.yaml"
SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_total")


def registered_names() -> set[str]:
    """Every sample name the three registries can expose (histogram and counter series too)."""
    registries: list[CollectorRegistry] = [
        PodMetrics("rm", "cpu", "cpu").registry,
        RouterMetrics("rm").registry,
        OperatorMetrics().registry,
    ]
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.add(family.name)
            names |= {family.name + suffix for suffix in SUFFIXES}
    return names


def named_metrics(text: str) -> set[str]:
    return set(re.findall(r"\b(recsched_[a-z0-9_]+)", text))


def test_dashboard_and_rules_name_only_metrics_the_code_registers() -> None:
    used = named_metrics(chart_dashboard_path().read_text()) | named_metrics(RULES.read_text())
    assert len(used) >= 15
    assert used - registered_names() == set()


def test_every_alert_reads_only_registered_metrics() -> None:
    registered = registered_names()
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert named_metrics(rule["expr"]), rule["alert"]
            assert named_metrics(rule["expr"]) <= registered, rule["alert"]


def test_panel_queries_fill_in_the_recmodel_namespace_and_rate_interval() -> None:
    queries = panel_queries(
        load_dashboard(), recmodel="rmc1-cpu", namespace="team-a", rate_interval="10s"
    )
    assert {q.panel for q in queries} >= {
        "End-to-end latency at the router vs the SLO target",
        "Rejected queries by reason",
        "annotation: Config changes",
    }
    for query in queries:
        assert "$" not in query.expr
        assert 'recmodel="rmc1-cpu"' in query.expr and 'namespace="team-a"' in query.expr
    assert any("[10s]" in q.expr for q in queries)
    panels_only = panel_queries(
        load_dashboard(), recmodel="x", namespace="y", include_annotations=False
    )
    assert not [q for q in panels_only if q.panel.startswith("annotation")]


def test_an_unknown_dashboard_variable_is_an_error() -> None:
    assert substitute('up{a="$a"}', {"a": "1"}) == 'up{a="1"}'
    assert substitute('up{a="${a}"}', {"a": "1"}) == 'up{a="1"}'
    with pytest.raises(DashboardError, match=r"\$pool"):
        substitute('up{pool="$pool"}', {"a": "1"})


def test_label_values_are_escaped() -> None:
    dashboard = {"panels": [{"title": "t", "targets": [{"expr": 'up{recmodel="$recmodel"}'}]}]}
    (query,) = panel_queries(dashboard, recmodel='a"b', namespace="n")
    assert query.expr == 'up{recmodel="a\\"b"}'


def test_slo_info_names_only_the_current_percentile() -> None:
    """The SLO alert joins on `recsched_slo_info`: one series per RecModel, or the join breaks."""
    metrics = OperatorMetrics()
    metrics.record_slo("ns", "rm", 95, 0.05)
    metrics.record_slo("ns", "rm", 99, 0.04)
    metrics.record_slo("ns", "other", 95, 0.1)
    registry = metrics.registry
    assert (
        registry.get_sample_value(
            "recsched_slo_info", {"namespace": "ns", "recmodel": "rm", "quantile": "0.99"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "recsched_slo_info", {"namespace": "ns", "recmodel": "rm", "quantile": "0.95"}
        )
        is None
    )
    assert (
        registry.get_sample_value(
            "recsched_slo_info", {"namespace": "ns", "recmodel": "other", "quantile": "0.95"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "recsched_slo_target_seconds", {"namespace": "ns", "recmodel": "rm"}
        )
        == 0.04
    )
    metrics.forget("ns", "rm")
    assert (
        registry.get_sample_value(
            "recsched_slo_info", {"namespace": "ns", "recmodel": "rm", "quantile": "0.99"}
        )
        is None
    )


def test_legends_render_like_grafana() -> None:
    labels = {"pool": "cpu", "reason": "overloaded"}
    assert render_legend("{{pool}}: {{ reason }}", labels) == "cpu: overloaded"
    assert render_legend("p95", labels) == "p95"
    assert render_legend("{{kind}}", labels) == ""


def test_dashboard_layout_and_variables_are_consistent() -> None:
    dashboard = load_dashboard()
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    used = set(re.findall(r"\$\{?(\w+)", json.dumps(dashboard)))
    assert used - {"__rate_interval"} == defined
