"""Observations for the tuner from Prometheus (`prometheus-api-client`), one window at a time.

End-to-end latency comes from the router's `recsched_router_query_duration_seconds` when a router
serves the RecModel, else from the pods' `recsched_query_duration_seconds` (one pod, no router).
Percentiles are `histogram_quantile` over `sum by (le)` of bucket rates, so they aggregate across
pods instead of averaging per-pod quantiles; per-pool percentiles group by `pool` as well. QPS is
the rate of `_count`, samples its increase over the window. Pool utilisation is compute
seconds per second over the workers the pods report, scaled up by the share of the pool's queries
it refused, so an overloaded pool reads above 1.0 rather than stuck at 100% busy. The served batch
size and threshold are reported only when every series held one value through the window.

`observe` never raises for Prometheus trouble: unreachable, HTTP errors, malformed answers, no
series, stale series or NaN all come back as an `Observation` with `error` set, so the tuner
holds with that reason.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from recsched_operator.tuner.observation import Observation
from recsched_operator.tuner.settings import SloTarget

logger = logging.getLogger(__name__)

ROUTER_DURATION = "recsched_router_query_duration_seconds"
POD_DURATION = "recsched_query_duration_seconds"
MAX_UTILIZATION = 100.0
"""Reported for a pool that refused everything it was sent (keeps the state JSON finite)."""


class ObservationError(Exception):
    """A query failed or answered nonsense; turned into `Observation.error`, never raised out."""


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class PrometheusSource:
    """Reads one RecModel's window from Prometheus at `url`.

    `timeout_s` bounds each HTTP request; `stale_after_s` is how old the newest latency sample may
    be before the series counts as stale (None: twice the SLO window, at least 30 s).
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        *,
        stale_after_s: float | None = None,
        retries: int = 1,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.stale_after_s = stale_after_s
        self._client = PrometheusConnect(
            url=self.url,
            disable_ssl=True,
            retry=Retry(total=retries, backoff_factor=0.1, status_forcelist=(502, 503, 504)),
            timeout=timeout_s,
        )

    def observe(
        self, recmodel: str, namespace: str | None, slo: SloTarget, now_s: float
    ) -> Observation:
        """The window of `slo.window_s` seconds ending at `now_s` (Unix seconds)."""
        try:
            return self._observe(recmodel, namespace, slo, now_s)
        except (requests.RequestException, PrometheusApiClientException) as exc:
            error = f"prometheus at {self.url} failed: {type(exc).__name__}: {_short(exc)}"
        except (ObservationError, KeyError, ValueError, TypeError, IndexError) as exc:
            error = f"prometheus answer unusable: {_short(exc)}"
        logger.warning("observation of %s failed: %s", recmodel, error)
        return Observation.failed(now_s, error)

    def _query(self, expr: str, now_s: float) -> list[dict[str, Any]]:
        result = self._client.custom_query(expr, params={"time": f"{now_s:.3f}"})
        if not isinstance(result, list):
            raise ObservationError(f"{expr}: expected a vector, got {type(result).__name__}")
        return result

    def _by_label(self, expr: str, label: str, now_s: float) -> dict[str, float]:
        return {
            str(series["metric"].get(label, "")): float(series["value"][1])
            for series in self._query(expr, now_s)
        }

    def _scalar(self, expr: str, now_s: float) -> float | None:
        result = self._query(expr, now_s)
        if not result:
            return None
        return float(result[0]["value"][1])

    def _observe(
        self, recmodel: str, namespace: str | None, slo: SloTarget, now_s: float
    ) -> Observation:
        matchers = [f'recmodel="{_label_value(recmodel)}"']
        if namespace:
            matchers.append(f'namespace="{_label_value(namespace)}"')
        sel = ",".join(matchers)
        window = f"{max(round(slo.window_s * 1000), 1)}ms"

        pod_counts = self._by_label(
            f"sum by (pool) (increase({POD_DURATION}_count{{{sel}}}[{window}]))", "pool", now_s
        )
        metric, counts = (
            ROUTER_DURATION,
            self._by_label(
                f"sum by (pool) (increase({ROUTER_DURATION}_count{{{sel}}}[{window}]))",
                "pool",
                now_s,
            ),
        )
        sizes_sel = f'{sel},pool="router"'
        if not counts or sum(counts.values()) <= 0:
            metric, counts, sizes_sel = POD_DURATION, pod_counts, f'{sel},pool!="router"'
        if not counts:
            return Observation.failed(
                now_s,
                f"no {POD_DURATION} or {ROUTER_DURATION} series "
                f"for {{{sel}}} (pods not scraped yet?)",
            )
        age = self._scalar(f"time() - max(timestamp({metric}_count{{{sel}}}))", now_s)
        stale_after = self.stale_after_s or max(2 * slo.window_s, 30.0)
        if age is None or age > stale_after:
            return Observation.failed(
                now_s,
                f"{metric} is stale: newest sample {age or math.inf:.0f} s old "
                f"> {stale_after:.0f} s",
            )
        samples = sum(counts.values())
        qps = self._scalar(f"sum(rate({metric}_count{{{sel}}}[{window}]))", now_s)
        quantile = f"sum by (le) (rate({metric}_bucket{{{sel}}}[{window}]))"
        p95 = self._scalar(f"histogram_quantile(0.95, {quantile})", now_s)
        p99 = self._scalar(f"histogram_quantile(0.99, {quantile})", now_s)
        pool_p95 = self._by_label(
            f"histogram_quantile(0.95, sum by (le, pool) "
            f"(rate({metric}_bucket{{{sel}}}[{window}])))",
            "pool",
            now_s,
        )
        rejected = self._by_label(
            f"sum by (pool) (increase(recsched_rejected_queries_total{{{sel}}}[{window}]))",
            "pool",
            now_s,
        )
        rejected["all"] = sum(rejected.values())
        error = None
        if samples > 0 and any(v is None or math.isnan(v) for v in (p95, p99)):
            error = f"p95/p99 of {metric} is NaN with {samples:.0f} queries in the window"
        return Observation(
            at_s=now_s,
            qps=qps,
            p95_ms=_ms(p95),
            p99_ms=_ms(p99),
            samples=samples,
            cpu_p95_ms=_ms(pool_p95.get("cpu")),
            gpu_p95_ms=_ms(pool_p95.get("gpu")),
            offloaded_fraction=counts.get("gpu", 0.0) / samples if samples > 0 else None,
            mean_query_items=self._ratio(
                f"sum(rate(recsched_query_items_sum{{{sizes_sel}}}[{window}]))",
                f"sum(rate(recsched_query_items_count{{{sizes_sel}}}[{window}]))",
                now_s,
            ),
            p95_query_items=_finite(
                self._scalar(
                    f"histogram_quantile(0.95, sum by (le) "
                    f"(rate(recsched_query_items_bucket{{{sizes_sel}}}[{window}])))",
                    now_s,
                )
            ),
            rejected_fraction=(rejected["all"] / (rejected["all"] + samples))
            if rejected["all"] + samples > 0
            else None,
            cpu_utilization=self._utilization(sel, window, "cpu", pod_counts, rejected, now_s),
            gpu_utilization=self._utilization(sel, window, "gpu", pod_counts, rejected, now_s),
            batch_size_items=self._steady_gauge(
                f'recsched_batch_size_items{{{sel},pool="cpu"}}', window, now_s
            ),
            offload_threshold_items=self._steady_gauge(
                f"recsched_offload_threshold_items{{{sel}}}", window, now_s
            ),
            window_s=slo.window_s,
            error=error,
        )

    def _ratio(self, numerator: str, denominator: str, now_s: float) -> float | None:
        top, bottom = self._scalar(numerator, now_s), self._scalar(denominator, now_s)
        if top is None or bottom is None or bottom <= 0:
            return None
        return _finite(top / bottom)

    def _utilization(
        self,
        sel: str,
        window: str,
        pool: str,
        served: dict[str, float],
        rejected: dict[str, float],
        now_s: float,
    ) -> float | None:
        """Compute seconds per worker-second, scaled by the pool's refused share of queries
        (a saturated pool is busy 100% of the time however much it is offered)."""
        busy = self._ratio(
            f'sum(rate(recsched_request_compute_seconds_sum{{{sel},pool="{pool}"}}[{window}]))',
            f'sum(avg_over_time(recsched_workers{{{sel},pool="{pool}"}}[{window}]))',
            now_s,
        )
        if busy is None:
            return None
        served_queries, refused = served.get(pool, 0.0), rejected.get(pool, 0.0)
        if refused <= 0:
            return busy
        if served_queries <= 0:
            return MAX_UTILIZATION
        return min(busy * (served_queries + refused) / served_queries, MAX_UTILIZATION)

    def _steady_gauge(self, series: str, window: str, now_s: float) -> int | None:
        low = self._scalar(f"min(min_over_time({series}[{window}]))", now_s)
        high = self._scalar(f"max(max_over_time({series}[{window}]))", now_s)
        if low is None or high is None or low != high or not math.isfinite(low):
            return None
        return int(low)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _ms(seconds: float | None) -> float | None:
    finite = _finite(seconds)
    return None if finite is None else finite * 1000.0


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
