"""The Grafana dashboard's panels as time series from a Prometheus, for local mode's report.

A thin I/O wrapper around the pure `dashboard_queries`: one range query per panel target, each
series named by the target's legend the way Grafana names it. Prometheus trouble is the caller's to
handle (`requests` / `prometheus_api_client` exceptions pass through).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

from prometheus_api_client import PrometheusConnect

from recsched_operator.local.dashboard_queries import load_dashboard, panel_queries, render_legend

Series = list[tuple[float, float]]  # (unix seconds, value)


def fetch_dashboard_series(
    prometheus_url: str,
    recmodel: str,
    namespace: str,
    start_s: float,
    end_s: float,
    *,
    rate_interval: str = "10s",
    step_s: float = 2.0,
    dashboard: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Series]]:
    """panel title -> legend -> finite points between `start_s` and `end_s` (Unix seconds)."""
    client = PrometheusConnect(url=prometheus_url, disable_ssl=True)
    queries = panel_queries(
        dashboard if dashboard is not None else load_dashboard(),
        recmodel=recmodel,
        namespace=namespace,
        rate_interval=rate_interval,
        include_annotations=False,
    )
    panels: dict[str, dict[str, Series]] = {}
    for query in queries:
        result = client.custom_query_range(
            query.expr,
            start_time=_utc(start_s),
            end_time=_utc(end_s),
            step=f"{step_s:g}",
        )
        for series in result:
            name = render_legend(query.legend, series.get("metric", {})) or query.expr
            points = [(float(t), float(v)) for t, v in series.get("values", [])]
            panels.setdefault(query.panel, {})[name] = [p for p in points if math.isfinite(p[1])]
    return panels


def _utc(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC)
