"""Local mode's report summarises the cluster dashboard's panels: one row per series, in order."""

from __future__ import annotations

from typing import Any

from recsched_operator.local.dashboard_table import dashboard_rows
from recsched_operator.recmodel.naming import Owner


def test_dashboard_rows_summarise_each_series_first_last_min_max() -> None:
    panels = {
        "Latency vs target": {"p95 | router": [(0.0, 12.0), (2.0, 30.5), (4.0, 9.25)]},
        "Batch size": {"cpu": [(0.0, 1024.0), (2.0, 256.0)], "empty": []},
    }
    rows = dashboard_rows(panels)
    assert rows[0].startswith("| panel | series | first | last | min | max |")
    assert rows[2] == "| Latency vs target | p95 / router | 12 | 9.25 | 9.25 | 30.5 |"
    assert rows[3] == "| Batch size | cpu | 1024 | 256 | 256 | 1024 |"
    assert len(rows) == 4  # a series without points gets no row


def test_dashboard_section_says_why_when_the_panels_cannot_be_read(monkeypatch: Any) -> None:
    import recsched_operator.local.dashboard_series as series
    from recsched_operator.local.dashboard_queries import DashboardError
    from recsched_operator.local.dashboard_table import dashboard_section

    def unreadable(*args: object, **kwargs: object) -> None:
        raise DashboardError("no dashboard at /x")

    monkeypatch.setattr(series, "fetch_dashboard_series", unreadable)
    lines = dashboard_section(
        "http://127.0.0.1:9", Owner(name="demo", namespace="default", uid="u1"), 0.0, 10.0
    )
    assert lines[1].startswith("## The cluster dashboard's panels")
    assert lines[-1] == "Not available: no dashboard at /x"
