"""Local mode, the embedded default: one RecModel run on this machine without Kubernetes.

The same manifest a cluster takes; pods and the router run as local processes, a real Prometheus
scrapes them through file-based discovery, and the same tuner as in the cluster drives the config
through the same channels (the config file the pods watch, and `PUT /admin/config`).
Layout: `plan` (pure: ports, command lines, Prometheus config), `processes` (start, wait, stop),
`actuator` (apply a config), `runner` (the tuning loop), `report` (what the run did).
"""
