"""The chart's RBAC grants exactly what the operator uses: nothing missing, nothing spare.

One scenario exercises every API path (peering on, create with a ready pod to push to, a pool
removed, delete), and the (apiGroup, resource, verb) of each request the emulator received must
equal the chart's ClusterRole. Requests from every other emulator test in the session must be
granted too: by the ClusterRole, or for operators run namespaced, by the namespace-scope Roles.
"""

from __future__ import annotations

import pytest

from support.chart_rbac import granted_permissions, render_chart
from support.kube_emulator import KubeEmulator, sent_permissions
from support.operator_harness import (
    NAMESPACED_SENT_PERMISSIONS,
    SENT_PERMISSIONS,
    create,
    eventually,
    merge_patch,
    obj,
    operator_settings,
    recmodel,
    running_operator,
)

pytestmark = pytest.mark.timeout(60)
RM = "recsched.io/v1alpha1/recmodels"
PEERINGS = "kopf.dev/v1/clusterkopfpeerings"


def event_reasons(kube: KubeEmulator) -> set[str]:
    return {str(o.get("reason")) for (r, _, _), o in kube.objects.items() if r.plural == "events"}


async def test_operator_requests_equal_the_chart_rbac(kube: KubeEmulator) -> None:
    kube.declare(PEERINGS, "ClusterKopfPeering", namespaced=False)
    kube.objects[PEERINGS, None, "recsched"] = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": "recsched", "resourceVersion": "0"},
    }
    kube.objects["v1/pods", "ns1", "rm1-cpu-0"] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "rm1-cpu-0",
            "namespace": "ns1",
            "labels": {"recsched.io/recmodel": "rm1", "recsched.io/pool": "cpu"},
        },
        "spec": {
            "containers": [{"name": "model", "ports": [{"name": "http", "containerPort": 9}]}]
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    body = recmodel(pools={"cpu": {"replicas": 1}, "gpu": {"replicas": 1, "device": "emulated"}})
    async with running_operator(operator_settings(kube), standalone=False):
        await eventually(lambda: kube.objects[PEERINGS, None, "recsched"].get("status"))
        await create(kube, body)
        await eventually(lambda: obj(kube, "apps/v1/deployments", "ns1", "rm1-gpu"))
        path = "/apis/recsched.io/v1alpha1/namespaces/ns1/recmodels/rm1"
        await merge_patch(kube, path, {"spec": {"pools": {"gpu": {"replicas": 0}}}})
        await eventually(lambda: kube.objects["apps/v1/deployments", "ns1", "rm1-gpu"].deleted)
        await eventually(lambda: obj(kube, RM, "ns1", "rm1")["status"]["lastDecision"])
        async with kube.delete(path) as response:
            assert response.status == 200
        await eventually(lambda: kube.objects[RM, "ns1", "rm1"].deleted)
        # The push to the pod (nothing listens on port 9) failed, and was reported as an Event.
        await eventually(lambda: "ConfigPushFailed" in event_reasons(kube))

    sent = sent_permissions(kube.requests)
    granted = granted_permissions(render_chart())
    assert sent - granted == set(), "used but not granted"
    assert granted - sent == set(), "granted but never used"
    assert SENT_PERMISSIONS - granted == set(), "used elsewhere in the suite but not granted"
    namespace_scope = {"rbac": {"scope": "namespace", "watchNamespaces": ["ns1", "ns2"]}}
    granted_in_namespaces = granted_permissions(render_chart(namespace_scope))
    assert NAMESPACED_SENT_PERMISSIONS - granted_in_namespaces == set(), "namespaced, not granted"
