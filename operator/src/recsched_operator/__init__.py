"""RecSched operator: the RecModel CRD's controller and the DeepRecSched tuner.

Layout (mysql-operator's split): `api` (typed spec), `naming`/`objects`/`pod_templates` (pure
manifest builders), `status`/`conditions` (pure status), `controller` and `tuning_loop`
(orchestration), `handlers` (kopf registration), `cli` (the `recsched-operator` command).
`tuning/`, `simulation/` and `observations` hold the tuner itself.
"""

__version__ = "0.1.0"
