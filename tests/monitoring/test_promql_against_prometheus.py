"""Every PromQL expression of the dashboard and of the alert rules, run against a real Prometheus
that scraped a real local run of one RecModel.

The run: a CPU pod and an emulated-GPU pod (in-process servers), router A in front of both plus a
stub CPU endpoint that answers 503 (upstream errors), router B with no GPU endpoint (fallbacks),
an invalid query (rejections), and the operator's own metrics registry (`OperatorMetrics`, served
as the operator serves it) holding what the tuner would have recorded: a tiny SLO target (breach),
an applied generation above the pods' (stale config), errors and push failures, a second,
never-scraped RecModel whose tuner stopped deciding, and a third whose tuning is held (paused).
Prometheus scrapes pods with the `namespace` target label the scrape annotations or the
PodMonitor add, and the operator with honor_labels, as the chart's ServiceMonitor does.

Then: every dashboard query (variables substituted by `recsched_operator.local.dashboard_queries`)
returns a finite value for the RecModel; every alert expression returns exactly the RecModels the
run was built to trip; and every label an expression groups, matches or draws in a legend exists
on a metric it names, so a misspelt metric or label fails here even where the query still answers.
"""

from __future__ import annotations

import http.server
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import start_http_server

from recsched_operator.local.dashboard_queries import load_dashboard, panel_queries
from recsched_operator.local.dashboard_series import fetch_dashboard_series
from recsched_operator.metrics import OperatorMetrics
from recsched_pod.router.app import create_router_app
from support.asgi_server import free_port, serve_pod, serve_router
from support.pod_fixtures import pod_settings, rmc1_query
from support.prometheus_server import PrometheusServer, requires_prometheus, running_prometheus
from support.waiting import wait_until

pytestmark = [pytest.mark.slow, requires_prometheus, pytest.mark.timeout(180)]

ROOT = Path(__file__).parents[2]
RULES = ROOT / "helm" / "recsched" / "rules" / "recsched.rules.yaml"
DASHBOARD = ROOT / "helm" / "recsched" / "dashboards" / "recsched.json"
NAMESPACE = "shop"
RECMODEL = "test-rm"  # pod_settings' recmodel
GHOST = "ghost-rm"  # tuned by the operator, never scraped
PAUSED = "paused-rm"  # never scraped either, and its tuning is held
THRESHOLD_ITEMS = 32
RATE_INTERVAL = "60s"
EXPECTED_ALERTS = {
    "RecSchedSLOBreached": {RECMODEL},
    "RecSchedTunerNotDeciding": {GHOST},
    "RecSchedOperatorErrors": {RECMODEL},
    "RecSchedConfigPushFailing": {RECMODEL},
    "RecSchedStaleConfigGeneration": {RECMODEL},
    "RecSchedMetricsMissing": {GHOST, PAUSED},
    "RecSchedGPUFallbacks": {RECMODEL},
    "RecSchedQueriesRejected": {RECMODEL},
}


@dataclass(frozen=True)
class ScrapedRun:
    prometheus: PrometheusServer
    traffic_started_s: float  # Unix time just before the first query
    scraped_at_s: float  # Unix time once Prometheus holds every counter the run grew


class RefusingPod(http.server.BaseHTTPRequestHandler):
    """A CPU endpoint that is ready but refuses every query with 503 (overloaded)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(200 if self.path.startswith("/v2/health") else 404)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(503)

    def _answer(self, status: int) -> None:
        body = b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def router_ready(url: str, cpu: int, gpu: int) -> bool:
    text = httpx.get(url + "/metrics").text
    return all(
        f'recsched_router_ready_endpoints{{pool="{pool}",recmodel="{RECMODEL}"}} {count}.0' in text
        for pool, count in (("cpu", cpu), ("gpu", gpu))
        if count or pool == "cpu"
    )


def host_port(url: str) -> str:
    return url.removeprefix("http://")


@pytest.fixture(scope="module")
def scraped_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrapedRun]:
    root = tmp_path_factory.mktemp("run")
    (root / "config.json").write_text(
        json.dumps(
            {"generation": 1, "batchSize": 8, "offloadThreshold": THRESHOLD_ITEMS, "workers": 1}
        )
    )
    operator = OperatorMetrics()
    operator.record_slo(NAMESPACE, RECMODEL, 95, 0.0001)  # 0.1 ms: every query breaches it
    operator.record_slo(NAMESPACE, GHOST, 99, 0.05)
    operator.record_slo(NAMESPACE, PAUSED, 95, 0.05)
    operator.tuning_held.labels(NAMESPACE, PAUSED).set(1)
    operator.decisions.labels(NAMESPACE, PAUSED, "hold").inc()
    for recmodel in (RECMODEL, GHOST):
        operator.tuning_held.labels(NAMESPACE, recmodel).set(0)
        operator.decisions.labels(NAMESPACE, recmodel, "hold").inc()
        # Counters start at zero where a rate must see them grow (Prometheus has no earlier
        # sample to count a series' first value from).
        operator.decisions.labels(NAMESPACE, recmodel, "probe")
        operator.decisions.labels(NAMESPACE, recmodel, "accept")
        operator.errors.labels(NAMESPACE, recmodel, "tuning")
        operator.push_failures.labels(NAMESPACE, recmodel)
        operator.generation.labels(NAMESPACE, recmodel).set(2)  # the pods serve generation 1
        operator.batch_size.labels(NAMESPACE, recmodel).set(8)
        operator.offload_threshold.labels(NAMESPACE, recmodel).set(THRESHOLD_ITEMS)
        operator.observed_latency.labels(NAMESPACE, recmodel, "0.95").set(0.01)
    operator_port = free_port()
    operator_server, _ = start_http_server(operator_port, "127.0.0.1", operator.registry)
    refusing = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingPod)
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    refusing_address = f"127.0.0.1:{refusing.server_address[1]}"
    cpu = pod_settings(root, pool="cpu", workers=1)
    gpu = pod_settings(root, pool="gpu", device="emulated", workers=1)
    try:
        with serve_pod(cpu) as cpu_url, serve_pod(gpu) as gpu_url:
            router_a = pod_settings(
                root,
                role="router",
                health_check_s=0.2,
                cpu_endpoints=f"{host_port(cpu_url)},{refusing_address}",
                gpu_endpoints=host_port(gpu_url),
            )
            router_b = pod_settings(
                root, role="router", health_check_s=0.2, cpu_endpoints=host_port(cpu_url)
            )
            with (
                serve_router(create_router_app(router_a)) as a_url,
                serve_router(create_router_app(router_b)) as b_url,
                running_prometheus(
                    targets=[host_port(u) for u in (cpu_url, gpu_url, a_url, b_url)],
                    labels={"namespace": NAMESPACE},
                    extra_scrape_configs=[
                        {
                            "job_name": "operator",
                            "honor_labels": True,
                            "static_configs": [
                                {
                                    "targets": [f"127.0.0.1:{operator_port}"],
                                    "labels": {"namespace": "recsched-system"},
                                }
                            ],
                        }
                    ],
                ) as prometheus,
            ):
                wait_until(lambda: router_ready(a_url, 2, 1), timeout_s=30)  # A sees its pods
                prometheus.wait_for_targets_up(5)
                traffic_started_s = time.time()
                send_invalid_query(a_url)  # the rejection counter's first sample
                prometheus.wait_until(f'recsched_rejected_queries_total{{recmodel="{RECMODEL}"}}')
                drive_traffic(a_url, b_url)
                send_invalid_query(a_url)
                send_invalid_query(a_url)
                # Counters the alerts read as increases: they must grow after the first scrape.
                operator.decisions.labels(NAMESPACE, RECMODEL, "probe").inc()
                operator.decisions.labels(NAMESPACE, RECMODEL, "accept").inc()
                operator.errors.labels(NAMESPACE, RECMODEL, "tuning").inc(2)
                operator.push_failures.labels(NAMESPACE, RECMODEL).inc()
                prometheus.wait_until(
                    f'recsched_tuner_push_failures_total{{recmodel="{RECMODEL}"}} >= 1'
                )
                for expr in (
                    f'sum(recsched_router_fallbacks_total{{recmodel="{RECMODEL}"}}) >= 12',
                    f'sum(recsched_rejected_queries_total{{recmodel="{RECMODEL}"}}) >= 3',
                    f'sum(recsched_tuner_decisions_total{{recmodel="{RECMODEL}"}}) >= 3',
                ):
                    prometheus.wait_until(expr)
                yield ScrapedRun(prometheus, traffic_started_s, scraped_at_s=time.time())
    finally:
        operator_server.shutdown()
        refusing.shutdown()


def drive_traffic(router_a: str, router_b: str) -> None:
    small, large = rmc1_query(8), rmc1_query(THRESHOLD_ITEMS + 8, seed=1)
    with httpx.Client(timeout=30) as client:
        for _ in range(12):
            for url, body in ((router_a, small), (router_a, large), (router_b, large)):
                reply = client.post(url + "/v2/models/rmc1/infer", json=body)
                assert reply.status_code == 200, reply.text


def send_invalid_query(router: str) -> None:
    reply = httpx.post(router + "/v2/models/rmc1/infer", json={"inputs": []}, timeout=30)
    assert reply.status_code == 400


_METRIC = re.compile(r"\b(recsched_[a-z0-9_]+)")
_GROUPING = re.compile(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def label_problems(prometheus: PrometheusServer, expr: str, legend: str = "") -> list[str]:
    """Metric names in `expr` with no series, and labels it uses that none of them carries."""
    problems: list[str] = []
    known: set[str] = set()
    for metric in sorted(set(_METRIC.findall(expr))):
        series = prometheus.api("series", {"match[]": metric})
        if not series:
            problems.append(f"no series named {metric}")
        known |= {label for s in series for label in s}
    used = {m for group in _GROUPING.findall(expr) for m in re.findall(r"\w+", group)}
    used |= set(_MATCHER.findall(expr)) | set(_LEGEND.findall(legend))
    # label_replace writes the SLO quantile label on the left of the join.
    problems += [f"no metric in it has a `{label}` label" for label in sorted(used - known)]
    return problems


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    values = [float(series["value"][1]) for series in result]
    return [value for value in values if math.isfinite(value)]


def test_every_dashboard_query_returns_the_recmodels_series(scraped_run: ScrapedRun) -> None:
    prometheus = scraped_run.prometheus
    queries = panel_queries(
        load_dashboard(DASHBOARD),
        recmodel=RECMODEL,
        namespace=NAMESPACE,
        rate_interval=RATE_INTERVAL,
    )
    assert len(queries) >= 20
    failures = []
    for query in queries:
        problems = label_problems(prometheus, query.expr, query.legend)
        if not finite_values(prometheus.query(query.expr)):
            problems.append("no finite value")
        failures += [f"{query.panel} [{query.legend}]: {p}: {query.expr}" for p in problems]
    assert failures == []


def test_dashboard_variable_queries_list_the_namespace_and_recmodel(
    scraped_run: ScrapedRun,
) -> None:
    prometheus = scraped_run.prometheus
    variables = {v["name"]: v for v in load_dashboard(DASHBOARD)["templating"]["list"]}
    for name, expected in (("namespace", NAMESPACE), ("recmodel", RECMODEL)):
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variables[name]["definition"])
        assert match and match.group(2) == name
        selector = match.group(1).replace("$namespace", NAMESPACE)
        values = {s["metric"][name] for s in prometheus.query(selector)}
        assert expected in values


def test_every_alert_fires_for_exactly_the_recmodels_the_run_trips(
    scraped_run: ScrapedRun,
) -> None:
    prometheus = scraped_run.prometheus
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    assert set(rules) == set(EXPECTED_ALERTS)
    fired = {}
    problems = []
    for name, rule in rules.items():
        fired[name] = {s["metric"]["recmodel"] for s in prometheus.query(rule["expr"])}
        problems += [f"{name}: {p}" for p in label_problems(prometheus, rule["expr"])]
    assert problems == []
    assert fired == EXPECTED_ALERTS


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("sum(rate(recsched_routed_query_total[1m]))", "no series named"),
        ("sum by (pol) (rate(recsched_routed_queries_total[1m]))", "`pol` label"),
        ('recsched_query_items_count{recmodle="test-rm"}', "`recmodle` label"),
    ],
    ids=["metric", "grouping-label", "matcher-label"],
)
def test_label_check_catches_a_misspelt_name_that_still_answers(
    scraped_run: ScrapedRun, expr: str, problem: str
) -> None:
    problems = label_problems(scraped_run.prometheus, expr)
    assert any(problem in p for p in problems), problems


def test_local_mode_can_draw_every_dashboard_panel_from_the_same_queries(
    scraped_run: ScrapedRun,
) -> None:
    # The window is the run's own, not the 30 s before this test happens to run: counters that
    # grew only while traffic ran (queries per pool, fallbacks) have no rate in a window that
    # starts more than 30 s after it (seen once in CI).
    panels = fetch_dashboard_series(
        scraped_run.prometheus.url,
        RECMODEL,
        NAMESPACE,
        scraped_run.traffic_started_s,
        scraped_run.scraped_at_s,
        rate_interval="30s",
    )
    dashboard = load_dashboard(DASHBOARD)
    titles = {p["title"] for p in dashboard["panels"] if p.get("targets")}
    assert set(panels) == titles
    assert all(any(points for points in series.values()) for series in panels.values())
    assert {"cpu", "gpu"} <= set(panels["Queries per second by pool"])
