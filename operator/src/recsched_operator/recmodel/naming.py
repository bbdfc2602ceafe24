"""Names, labels and owner references of a RecModel's children, in one place.

Every child carries the `app.kubernetes.io/*` labels plus `recsched.io/recmodel`, so the operator
finds a RecModel's pods by label and users can `kubectl get all -l recsched.io/recmodel=NAME`.
Selectors use only the stable labels (never a version or chart label), so they never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recsched_operator.recmodel.api import API_VERSION, GROUP, KIND

FIELD_MANAGER = "recsched-operator"
HTTP_PORT = 8000
CONFIG_KEY = "config.json"
CONFIG_FILE_PATH = f"/etc/recsched/{CONFIG_KEY}"
TOKEN_KEY = "token"
TOKEN_FILE_PATH = f"/var/run/recsched/{TOKEN_KEY}"
RECMODEL_LABEL = f"{GROUP}/recmodel"
POOL_LABEL = f"{GROUP}/pool"


@dataclass(frozen=True)
class Owner:
    """The RecModel that owns the children (enough to name them and point back at it)."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def configmap_name(recmodel: str) -> str:
    return f"{recmodel}-config"


def secret_name(recmodel: str) -> str:
    return f"{recmodel}-admin-token"


def deployment_name(recmodel: str, role: str) -> str:
    return f"{recmodel}-{role}"


def router_service_name(recmodel: str) -> str:
    return recmodel


def headless_service_name(recmodel: str, pool: str) -> str:
    return f"{recmodel}-{pool}-pods"


def common_labels(recmodel: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "recsched",
        "app.kubernetes.io/instance": recmodel,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        RECMODEL_LABEL: recmodel,
    }


def selector_labels(recmodel: str, role: str) -> dict[str, str]:
    """The labels a Deployment or Service selects its pods by (stable for the object's life)."""
    return {RECMODEL_LABEL: recmodel, POOL_LABEL: role}


def pool_pods_selector(recmodel: str) -> str:
    """Label selector of every router and pool pod of a RecModel (the config push targets)."""
    return f"{RECMODEL_LABEL}={recmodel}"


def pod_labels(recmodel: str, role: str) -> dict[str, str]:
    return {**common_labels(recmodel, role), **selector_labels(recmodel, role)}


def child_metadata(owner: Owner, name: str, *, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": common_labels(owner.name, component),
        "ownerReferences": [owner.reference()],
    }
