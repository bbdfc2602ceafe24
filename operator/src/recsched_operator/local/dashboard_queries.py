"""The PromQL of the Grafana dashboard, for local mode's report: what a user sees locally is what
the cluster dashboard shows.

The dashboard JSON lives in the chart (`helm/recsched/dashboards/recsched.json`, one source). This
module is pure: `panel_queries` takes the parsed dashboard and substitutes its variables
(`$namespace`, `$recmodel`, `$__rate_interval`) the way Grafana does for one selected RecModel;
an unknown `$variable` left in an expression is an error, so a new dashboard variable cannot
slip through unsubstituted. `chart_dashboard_path` finds the file in a source checkout (the
package is installed editable from the repository root); an installed wheel does not carry the
chart, so callers pass the path themselves there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD_FILE = Path("helm") / "recsched" / "dashboards" / "recsched.json"
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


class DashboardError(Exception):
    """The dashboard is missing or one of its expressions uses a variable we cannot fill in."""


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel (or one annotation query), ready to send to Prometheus."""

    panel: str
    legend: str
    expr: str


def chart_dashboard_path() -> Path:
    """The dashboard file of the chart in this source checkout."""
    root = Path(__file__).resolve().parents[4]
    path = root / DASHBOARD_FILE
    if not path.is_file():
        raise DashboardError(f"no dashboard at {path}: pass the chart's {DASHBOARD_FILE}")
    return path


def load_dashboard(path: Path | None = None) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads((path or chart_dashboard_path()).read_text())
    return dashboard


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with every `$name` / `${name}` replaced from `values` (DashboardError if unknown)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise DashboardError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def render_legend(legend_format: str, labels: Mapping[str, str]) -> str:
    """A Grafana legend (`{{pool}}: {{reason}}`) for one series' labels, as Grafana draws it."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), legend_format)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])  # collapsed rows hold their panels


def panel_queries(
    dashboard: Mapping[str, Any],
    *,
    recmodel: str,
    namespace: str,
    rate_interval: str = "1m",
    include_annotations: bool = True,
) -> list[PanelQuery]:
    """Every panel target (and annotation query) of `dashboard` for one RecModel."""
    values = {
        "recmodel": _label_value(recmodel),
        "namespace": _label_value(namespace),
        "__rate_interval": rate_interval,
    }
    queries = [
        PanelQuery(
            panel=str(panel.get("title", "")),
            legend=str(target.get("legendFormat", "")),
            expr=substitute(str(target["expr"]), values),
        )
        for panel in _panels(list(dashboard.get("panels") or []))
        for target in panel.get("targets") or []
        if target.get("expr")
    ]
    if include_annotations:
        queries += [
            PanelQuery(
                panel=f"annotation: {annotation.get('name', '')}",
                legend=str(annotation.get("titleFormat", "")),
                expr=substitute(str(annotation["expr"]), values),
            )
            for annotation in (dashboard.get("annotations") or {}).get("list") or []
            if annotation.get("expr")
        ]
    return queries
