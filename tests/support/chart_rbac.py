"""Render the Helm chart offline and read what its RBAC grants, as (apiGroup, resource, verb)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

CHART = Path(__file__).parents[2] / "helm" / "recsched"


def render_chart(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders (templates only; CRDs live in the chart's crds/)."""
    chart = helm.Chart.load(str(CHART))
    rendered = chart.render(
        values or {}, name="recsched", namespace="recsched-system", is_install=True
    )
    objects: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def granted_permissions(objects: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    granted: set[tuple[str, str, str]] = set()
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "Role"):
            continue
        for rule in obj["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        granted.add((group, resource, verb))
    return granted
