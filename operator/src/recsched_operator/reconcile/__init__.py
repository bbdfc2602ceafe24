"""The cluster shell: kopf handlers, reconcile orchestration, Kubernetes API access, start-up and
the per-RecModel tuning daemon. The only package that talks to the Kubernetes API."""
