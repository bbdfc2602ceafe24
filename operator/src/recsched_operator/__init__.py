"""RecSched operator: the RecModel CRD's controller and the DeepRecSched tuner.

Layers, top to bottom (an import only ever points down; `make lint` enforces it):

- `cli`, `simulate_cli`: the `recsched-operator` command (`run`, `render`, `local`, `simulate`).
- `local/`: local mode, the same operator cycle against processes on this machine.
- `reconcile/`: the cluster shell: kopf `handlers`, the per-RecModel `tuning_daemon` (runs the
  tuning cycle with the cluster actuator), `lifecycle` (start-up, peering check), the `controller`
  (apply children, read the config and pool readiness), the cluster `actuator` (ConfigMap + push +
  status + Events + metrics), `context`, `decision_status` (pure status fields of a decision),
  `config_push`, `kube_api` (the official client).
- `tuner/`: DeepRecSched online. The `cycle` (observe -> decide -> actuate -> record, behind an
  observation source and an actuator), then `bridge` (spec -> tuner inputs -> `outcome`),
  `outcome` (one round's result), `prometheus_source` (observations), the queueing `simulation/`,
  over a pure core (`policy`, `compass` (where to probe), `probing` (judge a probe), `objective`,
  `knobs`, `state`, `decision`, `reasons`, `settings`, `observation`).
- `recmodel/`: the RecModel API and pure builders: `api` (typed spec), `naming`,
  `config_document` (the served config: build, serialise, parse), `children` (ConfigMap, token,
  Services), `deployments` (router and pool Deployments), `status`,
  `conditions`.
- `metrics`, `settings`, `errors`: shared by all.
"""

__version__ = "0.1.0"
