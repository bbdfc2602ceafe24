"""Tuner inputs shared by the policy tests: the widest bounds (batch 1-1024, threshold 32 to off)
and the p95 target of 50 ms over 30 s windows that the rule-by-rule tests are written against."""

from __future__ import annotations

from recsched_operator.tuner import SloTarget, TuningBounds

WIDE_BOUNDS = TuningBounds(batch_min=1, batch_max=1024, threshold_min=32, threshold_max=1025)
SLO_P95_50MS = SloTarget(percentile=95, target_ms=50.0, window_s=30.0)
