"""PrometheusSource against a real Prometheus scraping a tiny in-test metrics server.

The server's histograms grow by the same fixed set of observations at every scrape, so the ratios
of bucket rates are exact whatever the scrape timing and the p95 Prometheus computes is known in
closed form: per scrape 100 queries, cumulative 40/64/85/99/100 at 10/20/40/80 ms/+Inf, so rank 95
falls in the (40 ms, 80 ms] bucket above rank 85 and linear interpolation gives
40 + 40 * (95 - 85) / (99 - 85) = 68.57 ms.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from recsched_operator.tuner import SloTarget
from recsched_operator.tuner.prometheus_source import PrometheusSource
from support.prometheus_server import (
    PrometheusServer,
    free_port,
    requires_prometheus,
    running_prometheus,
)

pytestmark = [requires_prometheus, pytest.mark.timeout(90)]

SLO = SloTarget(percentile=95, target_ms=50.0, window_s=3.0)
# Per scrape: cumulative counts at upper bounds (seconds), and the sum of the observations.
CPU_BUCKETS = ((0.01, 40), (0.02, 64), (0.04, 75), (0.08, 79), (float("inf"), 80))
GPU_BUCKETS = ((0.01, 0), (0.02, 0), (0.04, 10), (0.08, 20), (float("inf"), 20))
OTHER_BUCKETS = ((0.01, 0), (0.02, 0), (0.04, 0), (0.08, 0), (float("inf"), 100))


class GrowingMetrics(Collector):
    """Adds the fixed per-scrape counts at every collect (one collect per scrape)."""

    def __init__(self) -> None:
        self.scrapes = 0

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        self.scrapes += 1
        n = self.scrapes
        duration = HistogramMetricFamily(
            "recsched_query_duration_seconds", "Query latency.", labels=["recmodel", "pool"]
        )
        for recmodel, pool, buckets in (
            ("m1", "cpu", CPU_BUCKETS),
            ("m1", "gpu", GPU_BUCKETS),
            ("other", "cpu", OTHER_BUCKETS),
        ):
            cumulative = [(_le(bound), float(count * n)) for bound, count in buckets]
            duration.add_metric([recmodel, pool], cumulative, sum_value=0.02 * buckets[-1][1] * n)
        yield duration
        items = HistogramMetricFamily(
            "recsched_query_items", "Query size.", labels=["recmodel", "pool"]
        )
        items.add_metric(["m1", "cpu"], [("64", 60.0 * n), ("+Inf", 80.0 * n)], 80 * 50.0 * n)
        items.add_metric(["m1", "gpu"], [("64", 0.0), ("+Inf", 20.0 * n)], 20 * 600.0 * n)
        yield items
        batch = GaugeMetricFamily(
            "recsched_batch_size_items", "Batch size.", labels=["recmodel", "pool"]
        )
        batch.add_metric(["m1", "cpu"], 64.0)
        yield batch


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


@pytest.fixture(scope="module")
def metrics_target() -> Iterator[tuple[str, GrowingMetrics]]:
    registry = CollectorRegistry()
    metrics = GrowingMetrics()
    registry.register(metrics)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", metrics
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def prometheus(metrics_target: tuple[str, GrowingMetrics]) -> Iterator[PrometheusServer]:
    with running_prometheus(targets=[metrics_target[0]], scrape_interval_s=0.5) as prom:
        prom.wait_for_targets_up(1)
        # A full window of scrapes, so the rate covers the fixed per-scrape increments only.
        prom.wait_until(
            'count_over_time(recsched_batch_size_items{recmodel="m1"}[3s])',
            lambda result: bool(result) and float(result[0]["value"][1]) >= 6,
        )
        yield prom


def test_observation_reads_p95_p99_and_pool_split_from_histograms(
    prometheus: PrometheusServer,
) -> None:
    observation = PrometheusSource(prometheus.url).observe("m1", None, SLO, time.time())
    assert observation.error is None
    assert observation.p95_ms == pytest.approx(40 + 40 * 10 / 14, abs=1e-6)
    # Rank 99 of 100 is the top of the (40, 80] ms bucket.
    assert observation.p99_ms == pytest.approx(80.0, abs=1e-6)
    # CPU alone: rank 76 of 80 in (40, 80] ms holding ranks 76-79: 40 + 40 * 1/4 = 50 ms.
    assert observation.cpu_p95_ms == pytest.approx(50.0, abs=1e-6)
    # GPU alone: rank 19 of 20 in (40, 80] ms holding ranks 11-20: 40 + 40 * 9/10 = 76 ms.
    assert observation.gpu_p95_ms == pytest.approx(76.0, abs=1e-6)
    assert observation.offloaded_fraction == pytest.approx(0.2, abs=1e-9)
    assert observation.mean_query_items == pytest.approx((80 * 50 + 20 * 600) / 100, rel=1e-9)
    assert observation.batch_size_items == 64
    # 100 queries per 0.5 s scrape: 200 qps; scrape jitter and extrapolation move it a little.
    assert observation.qps == pytest.approx(200.0, rel=0.25)
    assert observation.samples == pytest.approx(200.0 * SLO.window_s, rel=0.25)


def test_observation_selects_the_recmodel_by_label(prometheus: PrometheusServer) -> None:
    observation = PrometheusSource(prometheus.url).observe("other", None, SLO, time.time())
    assert observation.error is None
    assert observation.gpu_p95_ms is None
    assert observation.offloaded_fraction == 0.0
    # Every query of "other" lies above 80 ms: the quantile is the highest finite bound.
    assert observation.p95_ms == pytest.approx(80.0, abs=1e-6)


def test_observation_is_an_error_when_the_recmodel_has_no_series(
    prometheus: PrometheusServer,
) -> None:
    observation = PrometheusSource(prometheus.url).observe("absent", None, SLO, time.time())
    assert (
        observation.error is not None and "no recsched_query_duration_seconds" in observation.error
    )
    assert observation.p95_ms is None and observation.samples == 0


def test_observation_is_an_error_when_prometheus_is_down() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    observation = PrometheusSource(url, timeout_s=1.0).observe("m1", None, SLO, time.time())
    assert observation.error is not None and url in observation.error
    assert observation.p95_ms is None and observation.qps is None


def test_a_failing_prometheus_is_asked_one_query_not_every_query_of_the_window() -> None:
    # The first failure ends the observation (its retry included): a Prometheus that is down
    # costs one query's timeout per decision, not one per PromQL query.
    requests: list[str] = []

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        observation = PrometheusSource(url, retries=1).observe("m1", None, SLO, time.time())
    finally:
        server.shutdown()
        server.server_close()
    assert observation.error is not None and url in observation.error
    assert len(requests) == 2, requests  # one query, asked twice (retries=1)


def test_observation_is_an_error_when_the_answer_is_not_prometheus() -> None:
    class Nonsense(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "success", "data": {"result": "not a vector"}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Nonsense)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        observation = PrometheusSource(url).observe("m1", None, SLO, time.time())
    finally:
        server.shutdown()
        server.server_close()
    assert observation.error is not None and "unusable" in observation.error
