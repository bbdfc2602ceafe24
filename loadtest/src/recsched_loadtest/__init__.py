"""recsched-loadtest: the project's measuring instrument.

An open-loop load generator for Open Inference Protocol v2 endpoints that reproduces DeepRecInfra's
workload (per-query sizes from a seeded distribution, Poisson arrivals on an absolute clock) without
its fidelity bugs, plus a latency-bounded capacity search and configuration sweeps.

Layout: pure modules (`sizes`, `arrivals`, `indices`, `signature`, `encoding`, `stats`,
`capacity_search`, `report_files`) take random generators and times as arguments and do no I/O;
I/O modules (`transports`, `driver`, `oip_client`, `capacity`, `sweep`, `plots`, `console`, `cli`)
wrap them thinly.
"""

__version__ = "0.1.0"
