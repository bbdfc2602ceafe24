"""Queueing simulator of router + CPU pool + GPU pool, pure (numpy only, seeded).

Layout by role: `profiles` (measured per-batch service times), `workload` (query sizes and
Poisson arrivals), `engine` (the discrete-event model of one window), `capacity` (latency-bounded
throughput and the grid optimum), `tuning_run` (the tuner in closed loop with the simulator, and
the issue's floors measured on it), `study` (the wide study's case grid) and `drift` (recovery
after a change, with baselines). Tests, benchmarks and `recsched-operator simulate` use it.
"""

from recsched_operator.tuner.simulation.capacity import CapacityModel, Scenario
from recsched_operator.tuner.simulation.engine import ClusterShape, WindowResult, simulate_window
from recsched_operator.tuner.simulation.profiles import (
    ServiceProfile,
    load_profile,
    profile_names,
    synthetic_profile,
)
from recsched_operator.tuner.simulation.tuning_run import (
    RunScore,
    SimulatedService,
    TuningRun,
    evaluate_run,
    run_tuner,
    worst_corner,
)
from recsched_operator.tuner.simulation.workload import SIZE_DISTRIBUTIONS, SizeDistribution

__all__ = [
    "SIZE_DISTRIBUTIONS",
    "CapacityModel",
    "ClusterShape",
    "RunScore",
    "Scenario",
    "ServiceProfile",
    "SimulatedService",
    "SizeDistribution",
    "TuningRun",
    "WindowResult",
    "evaluate_run",
    "load_profile",
    "profile_names",
    "run_tuner",
    "simulate_window",
    "synthetic_profile",
    "worst_corner",
]
