"""RecSched operator: the RecModel CRD's controller and the DeepRecSched tuner.

Layers, top to bottom (an import only ever points down; `make lint` enforces it):

- `cli`, `simulate_cli`: the `recsched-operator` command (`run`, `render`, `local`, `simulate`).
- `local/`: local mode, the same operator cycle against processes on this machine.
- `reconcile/`: the cluster shell: kopf `handlers`, the `controller` (apply children, actuate a
  config), `kube_api` (the official client), `lifecycle` (start-up, peering check), `config_push`,
  and the per-RecModel `tuning_daemon`.
- `tuner/`: DeepRecSched online. A pure core (`policy`, `compass` (where to probe), `probing` (judge
  a probe), `objective`, `knobs`, `state`, `decision`, `reasons`, `settings`, `observation`), the
  queueing `simulation/`, and its edges: `prometheus_source` (observations), `bridge` (spec ->
  tuner inputs) and `outcome` (one round's result as status).
- `recmodel/`: the RecModel API and pure builders: `api` (typed spec), `naming`, `children`
  (ConfigMap, token, Services), `deployments` (router and pool Deployments), `status`,
  `conditions`.
- `metrics`, `settings`, `errors`: shared by all.
"""

__version__ = "0.1.0"
