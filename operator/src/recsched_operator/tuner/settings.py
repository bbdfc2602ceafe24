"""What the tuner aims at (`SloTarget`), how it behaves (`TuningSettings`) and whether it acts
(`TuningMode`).

Every setting says its unit and why its default is what it is: these numbers decide how fast the
search moves and how easily noise fools it, and they are tuned against the simulator
(`bench/tuner_convergence.py`) with 10% multiplicative noise on every observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TuningMode(StrEnum):
    """`auto` applies decisions; `recommend` decides but keeps serving; `off` only holds."""

    AUTO = "auto"
    RECOMMEND = "recommend"
    OFF = "off"


@dataclass(frozen=True)
class SloTarget:
    """Tail-latency objective: `percentile` (95 or 99) of end-to-end query latency <= `target_ms`,
    measured over a sliding `window_s` (also the tuner's measurement window)."""

    percentile: int
    target_ms: float
    window_s: float = 30.0

    def __post_init__(self) -> None:
        if self.percentile not in (95, 99):
            raise ValueError(f"percentile must be 95 or 99, got {self.percentile}")
        if self.target_ms <= 0 or self.window_s <= 0:
            raise ValueError(f"target_ms and window_s must be positive: {self}")

    def describe(self) -> str:
        return f"p{self.percentile} <= {self.target_ms:g} ms"


@dataclass(frozen=True)
class TuningSettings:
    """Knobs of the tuner itself. Units in the names; reasons for the defaults alongside."""

    cooldown_s: float = 10.0
    """Seconds after a config change before the measurement window may start. Pods apply a new
    config between batches and the requests already queued were split under the old batch size;
    10 s drains them at any load the SLO allows."""

    min_samples: int = 200
    """Fewest queries in the window for a verdict: the p95 of 200 is the 10th largest, close
    enough to the true p95 (about +-15% for latency spreads seen here) to use with the band."""

    noise_band: float = 0.03
    """Relative difference in capacity use (`objective.capacity_use`) treated as a tie. Capacity
    use is mostly utilisation, a counter rate, far less noisy than a p95 (DeepRecSched's 10% band
    was on p95). Near the optimum neighbours differ by 3-10%: on the simulator a 5% band stopped
    short of the optimum (94% of its capacity) in 3 of 48 runs, 3% in none."""

    comparable_load_fraction: float = 0.10
    """Compare two configs only if QPS differs by at most this fraction; beyond it the comparison
    is discarded and the incumbent re-measured. 10% keeps the p95 change from load under the band
    at the 70-80% utilisation the tuner steers to."""

    load_drift_fraction: float = 0.20
    """Converged: re-tune when QPS moves this far from where the search ended (issue 5: +-20%)."""

    size_drift_fraction: float = 0.20
    """Converged: re-tune when the mean query size moves this far (the best B follows the mix)."""

    p95_drift_fraction: float = 0.30
    """Converged: re-tune when the tracked percentile rises this far above its converged value,
    above `latency_headroom` of the target, `drift_intervals` times in a row (30% is three noise
    sigmas; far below the target a rise costs nothing and re-tuning would only spend probes)."""

    drift_intervals: int = 2
    """Consecutive intervals a p95 drift or SLO breach must last before a converged tuner
    re-tunes: one noisy window must not restart a search."""

    initial_step: int = 2
    """Grid positions per first step of a knob (2 = x4 in batch size): from a bad corner the
    optimum is 5-8 positions away and the issue allows 15 decisions; halved after a failure."""

    max_step: int = 2
    """Largest step after successes in one direction: bigger leaps overshoot the optimum and each
    overshoot costs a probe and a rollback."""

    imbalance_ratio: float = 2.0
    """When one pool's utilisation (or p95, without utilisation) exceeds the other's by this
    factor, the threshold is searched first and moved toward the pool with headroom."""

    latency_headroom: float = 0.8
    """Fraction of the target below which tail latency costs nothing in `objective.capacity_use`.
    0.8 leaves room for 10% latency noise between a converged p95 and the target; 0.6 already
    misjudges capacity at 90% load on the simulator."""

    latency_penalty: float = 2.0
    """Exponent on (1 + latency above the headroom, per unit of target) in `capacity_use`: at 2,
    p95 at the target costs like 44% more utilisation. 1-3 all pick the simulated optima."""

    overload_latency_ratio: float = 100.0
    """Latency (as a multiple of the target) at which `capacity_use` stops counting more; also
    what an overloaded window's latency counts as. Far beyond anything a config that keeps up
    shows, so overloaded configs rank below those, and only utilisation orders them."""

    gpu_queueing_margin: float = 0.2
    """Share of the tracked percentile set aside as noise before `objective.gpu_queueing_use`
    reads the rest beyond the GPU's service time as queueing: two sigmas of the 10% latency
    noise, so a percentile that is the service time alone is not read as a queue."""

    rejected_penalty: float = 10.0
    """Weight of the refused-query fraction in `capacity_use`: 1% refused costs like 10% more
    utilisation, so a config that sheds load never looks better than one that serves it."""

    history_length: int = 20
    """Trials kept in the state (and the RecModel status). A search from a corner takes at most
    ~15 trials, so 20 also remembers the losers near the optimum."""

    reference_measurements: int = 4
    """How many measurements of the incumbent the reference p95 averages (geometric mean): more
    beats noise, fewer follows slow drifts."""

    def __post_init__(self) -> None:
        if self.min_samples < 1 or self.history_length < 1 or self.reference_measurements < 1:
            raise ValueError(f"counts must be positive: {self}")
        if not (0 <= self.noise_band < 1 and self.comparable_load_fraction >= 0):
            raise ValueError(f"noise_band must lie in [0, 1): {self}")
        if self.initial_step < 1 or self.max_step < self.initial_step:
            raise ValueError(f"need 1 <= initial_step <= max_step: {self}")
