"""The Grafana dashboard's panels as a table in local mode's reports (issue 17).

Local mode draws its own plot, but what a user reads there should be what the cluster dashboard
shows, so this section runs the dashboard's own PromQL (`dashboard_series`, one range query per
panel target) against the run's Prometheus and summarises each series: first, last, min, max over
the run. `dashboard_rows` is pure (tested on its own); `dashboard_section` is the best-effort I/O
wrapper the report writers call: a dashboard file that is missing (an installed wheel carries no
chart) or a Prometheus error gives one line saying so, never a lost report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from recsched_operator.local.dashboard_queries import DASHBOARD_FILE
from recsched_operator.recmodel.naming import Owner

logger = logging.getLogger(__name__)

Series = list[tuple[float, float]]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def dashboard_rows(panels: Mapping[str, Mapping[str, Series]]) -> list[str]:
    """Markdown table rows: panel, series, first, last, min, max (panels in dashboard order)."""
    rows = ["| panel | series | first | last | min | max |", "|---|---|---|---|---|---|"]
    for panel, series in panels.items():
        for name, points in sorted(series.items()):
            if not points:
                continue
            values = [v for _, v in points]
            cells = (panel, name.replace("|", "/"), values[0], values[-1], min(values), max(values))
            rows.append("| {} | {} | {} | {} | {} | {} |".format(*cells[:2], *map(_fmt, cells[2:])))
    return rows


def dashboard_section(
    prometheus_url: str, owner: Owner, start_s: float, end_s: float, rate_interval: str = "10s"
) -> list[str]:
    """The report's dashboard section for one run (best effort, see the module docstring)."""
    lines = [
        "",
        "## The cluster dashboard's panels over this run",
        "",
        f"The same PromQL as the Grafana dashboard (`{DASHBOARD_FILE}`), for this RecModel, with "
        f"`$__rate_interval` = {rate_interval}. Panels of the operator's own metrics stay empty "
        "in local mode (no operator process is scraped).",
        "",
    ]
    try:
        from recsched_operator.local.dashboard_series import fetch_dashboard_series

        panels = fetch_dashboard_series(
            prometheus_url, owner.name, owner.namespace, start_s, end_s, rate_interval=rate_interval
        )
    except Exception as error:  # best effort: the report must survive a missing dashboard
        logger.warning("dashboard panels not read: %s", error)
        return [*lines, f"Not available: {error}"]
    rows = dashboard_rows(panels)
    return lines + (rows if len(rows) > 2 else ["No panel returned data."])
