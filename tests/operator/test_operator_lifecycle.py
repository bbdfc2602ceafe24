"""The operator under kopf against the emulated API: create, update, delete, invalid spec, pause,
restart. Pods and Prometheus are absent here (the tuning round trip has them), so the tuner
always holds with MetricsAvailable=False: which is itself the "Prometheus down" behaviour."""

from __future__ import annotations

import json
from typing import Any

import httpx
import kopf
import pytest

from support.kube_emulator import KubeEmulator
from support.operator_harness import (
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
DEPLOY = "apps/v1/deployments"
RM_PATH = "/apis/recsched.io/v1alpha1/namespaces/ns1/recmodels/rm1"


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    for item in status.get("conditions", []):
        if item["type"] == type_:
            return dict(item)
    raise KeyError(type_)


async def test_create_renders_every_child_with_owner_and_status(kube: KubeEmulator) -> None:
    async with running_operator(operator_settings(kube)):
        await create(kube, recmodel())
        status = await eventually(lambda: obj(kube, RM, "ns1", "rm1")["status"]["applied"])
        owner_uid = obj(kube, RM, "ns1", "rm1")["metadata"]["uid"]
        children = {
            ("v1/configmaps", "rm1-config"),
            ("v1/secrets", "rm1-admin-token"),
            ("v1/services", "rm1"),
            ("v1/services", "rm1-cpu-pods"),
            ("v1/services", "rm1-gpu-pods"),
            (DEPLOY, "rm1-router"),
            (DEPLOY, "rm1-cpu"),
        }
        for resource, name in children:
            child = obj(kube, resource, "ns1", name)
            assert child["metadata"]["ownerReferences"][0]["uid"] == owner_uid, name
            assert child["metadata"]["labels"]["recsched.io/recmodel"] == "rm1"
        with pytest.raises(KeyError):
            obj(kube, DEPLOY, "ns1", "rm1-gpu")  # gpu replicas default to 0: no Deployment
        document = json.loads(
            obj(kube, "v1/configmaps", "ns1", "rm1-config")["data"]["config.json"]
        )
        assert document == {
            "generation": 1,
            "batchSize": 32,
            "offloadThreshold": 1025,
            "workers": 2,
        }
        assert status["generation"] == 1
        cpu = obj(kube, DEPLOY, "ns1", "rm1-cpu")["spec"]
        assert cpu["replicas"] == 2
        assert cpu["template"]["spec"]["containers"][0]["args"][-2:] == ["--workers", "2"]
        token = obj(kube, "v1/secrets", "ns1", "rm1-admin-token")["data"]["token"]
        assert len(token) > 20
        rm_status = obj(kube, RM, "ns1", "rm1")["status"]
        assert rm_status["observedGeneration"] == 1
        assert condition(rm_status, "Ready")["status"] == "False"  # no pod is ready here
        assert rm_status["phase"] == "Deploying"
        applies = [
            r
            for r in kube.requests
            if r.headers.get("Content-Type", "").startswith("application/apply-patch")
        ]
        assert applies and all(r.params.get("fieldManager") == "recsched-operator" for r in applies)


async def test_pool_readiness_follows_deployment_status(kube: KubeEmulator) -> None:
    async with running_operator(operator_settings(kube)) as memo:
        await create(kube, recmodel())
        await eventually(lambda: obj(kube, DEPLOY, "ns1", "rm1-cpu"))
        for name, ready in (("rm1-cpu", 2), ("rm1-router", 1)):
            kube.objects[DEPLOY, "ns1", name]["status"] = {"readyReplicas": ready}

        def ready() -> bool:
            status = obj(kube, RM, "ns1", "rm1")["status"]
            return condition(status, "Ready")["status"] == "True"

        await eventually(ready)
        status = obj(kube, RM, "ns1", "rm1")["status"]
        assert status["pools"]["cpu"] == {"replicas": 2, "readyReplicas": 2}
        assert condition(status, "GPUPoolReady")["reason"] == "NotRequested"
        assert condition(status, "MetricsAvailable")["status"] == "False"
        assert condition(status, "MetricsAvailable")["reason"] == "PrometheusError"
        assert status["phase"] == "Holding"
        assert status["applied"]["batchSize"] == 32  # Prometheus down: the config is held
        base_url = f"http://127.0.0.1:{memo.health_server.bound_port}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base_url}/healthz")).status_code == 200
            metrics = (await client.get(f"{base_url}/metrics")).text
        assert 'recsched_tuner_decisions_total{action="hold",namespace="ns1",recmodel="rm1"}' in (
            metrics
        )
        assert 'recsched_tuner_batch_size_items{namespace="ns1",recmodel="rm1"} 32.0' in metrics


async def test_spec_update_changes_children_and_adds_gpu_pool(kube: KubeEmulator) -> None:
    async with running_operator(operator_settings(kube)):
        await create(kube, recmodel())
        await eventually(lambda: obj(kube, DEPLOY, "ns1", "rm1-cpu"))
        template_before = obj(kube, DEPLOY, "ns1", "rm1-cpu")["spec"]["template"]
        await merge_patch(
            kube,
            RM_PATH,
            {
                "spec": {
                    "pools": {
                        "cpu": {"replicas": 3, "workers": 2},
                        "gpu": {"replicas": 1, "device": "emulated"},
                    },
                    "tuning": {
                        "offloadThreshold": {"min": 64, "max": 1025, "initial": 256},
                        "batchSize": {"min": 1, "max": 16, "initial": 8},
                    },
                }
            },
        )
        gpu = await eventually(lambda: obj(kube, DEPLOY, "ns1", "rm1-gpu"))
        assert gpu["spec"]["template"]["spec"]["containers"][0]["args"][-4:-2] == [
            "--device",
            "emulated",
        ]
        cpu = obj(kube, DEPLOY, "ns1", "rm1-cpu")["spec"]
        assert cpu["replicas"] == 3
        assert cpu["template"] == template_before  # replicas only: no pod template change
        await eventually(lambda: obj(kube, RM, "ns1", "rm1")["status"]["observedGeneration"] == 2)
        # The tuned batch size is clamped into the new bounds (a new generation); the threshold
        # is kept, not reset to the new initial value.
        document = json.loads(
            obj(kube, "v1/configmaps", "ns1", "rm1-config")["data"]["config.json"]
        )
        assert (document["generation"], document["batchSize"]) == (2, 16)
        assert document["offloadThreshold"] == 1025
        await merge_patch(kube, RM_PATH, {"spec": {"pools": {"gpu": {"replicas": 0}}}})
        await eventually(lambda: kube.objects[DEPLOY, "ns1", "rm1-gpu"].deleted)


async def test_delete_releases_the_finalizer(kube: KubeEmulator) -> None:
    async with running_operator(operator_settings(kube)):
        await create(kube, recmodel())
        await eventually(
            lambda: (
                "recsched.io/finalizer"
                in obj(kube, RM, "ns1", "rm1")["metadata"].get("finalizers", [])
            )
        )
        async with kube.delete(RM_PATH) as response:
            assert response.status == 200
        await eventually(lambda: kube.objects[RM, "ns1", "rm1"].deleted)


def handled_annotations(kube: KubeEmulator, batch_min_items: int) -> dict[str, str] | None:
    """rm1's annotations once kopf's diff base (the spec it last handled) has this batch min."""
    annotations: dict[str, str] = obj(kube, RM, "ns1", "rm1")["metadata"].get("annotations", {})
    handled = json.loads(annotations.get("recsched.io/last-handled-configuration", "{}"))
    batch = handled.get("spec", {}).get("tuning", {}).get("batchSize", {})
    return annotations if batch.get("min") == batch_min_items else None


def spec_errors(memo: kopf.Memo) -> float:
    """How many times the reconcile handler failed on an invalid spec for rm1."""
    value = memo.context.metrics.registry.get_sample_value(
        "recsched_operator_errors_total",
        {"namespace": "ns1", "recmodel": "rm1", "stage": "spec"},
    )
    return float(value or 0.0)


async def test_invalid_spec_sets_condition_without_crash_loop(kube: KubeEmulator) -> None:
    bad = recmodel(tuning={"batchSize": {"min": 64, "max": 8, "initial": 16}})
    async with running_operator(operator_settings(kube)) as memo:
        await create(kube, bad)

        def invalid() -> dict[str, Any]:
            status = obj(kube, RM, "ns1", "rm1")["status"]
            assert condition(status, "Ready")["reason"] == "InvalidSpec"
            return status

        status = await eventually(invalid)
        assert "spec.tuning.batchSize.min" in condition(status, "Ready")["message"]
        assert status["phase"] == "Invalid"
        with pytest.raises(KeyError):
            obj(kube, DEPLOY, "ns1", "rm1-cpu")
        # A permanent error is not retried: kopf recorded the invalid spec as handled (its diff
        # base holds it and no progress of the handler is left), after exactly one attempt.
        annotations = await eventually(lambda: handled_annotations(kube, 64))
        assert not [key for key in annotations if key.endswith("reconcile-on-create")]
        assert spec_errors(memo) == 1
        await merge_patch(
            kube, RM_PATH, {"spec": {"tuning": {"batchSize": {"min": 1, "max": 64, "initial": 16}}}}
        )
        await eventually(lambda: obj(kube, DEPLOY, "ns1", "rm1-cpu"))
        assert spec_errors(memo) == 1, "the invalid spec was never retried in the meantime"


async def test_pause_annotation_holds_tuning(kube: KubeEmulator) -> None:
    body = recmodel()
    body["metadata"]["annotations"] = {"recsched.io/tuning-paused": "true"}
    async with running_operator(operator_settings(kube)):
        await create(kube, body)
        await eventually(
            lambda: condition(obj(kube, RM, "ns1", "rm1")["status"], "Tuned")["reason"] == "Paused"
        )
        status = obj(kube, RM, "ns1", "rm1")["status"]
        assert "lastDecision" not in status
        await merge_patch(
            kube, RM_PATH, {"metadata": {"annotations": {"recsched.io/tuning-paused": None}}}
        )
        await eventually(lambda: "lastDecision" in obj(kube, RM, "ns1", "rm1")["status"])


async def test_restart_resumes_the_search_from_status(kube: KubeEmulator) -> None:
    settings = operator_settings(kube)
    async with running_operator(settings):
        await create(kube, recmodel())
        first = await eventually(lambda: obj(kube, RM, "ns1", "rm1")["status"]["tuningState"])
        await eventually(
            lambda: (
                "recsched.io/last-handled-configuration"
                in obj(kube, RM, "ns1", "rm1")["metadata"]["annotations"]
            )
        )
        uid = obj(kube, "v1/secrets", "ns1", "rm1-admin-token")["metadata"]["uid"]
    # A predecessor left a search in progress: generation 7 in the ConfigMap, state in status.
    state = dict(first, decisions=41)
    document = {"generation": 7, "batchSize": 128, "offloadThreshold": 1025, "workers": 2}
    kube.objects["v1/configmaps", "ns1", "rm1-config"]["data"] = {
        "config.json": json.dumps(document)
    }
    kube.objects[RM, "ns1", "rm1"]["status"] = {
        **obj(kube, RM, "ns1", "rm1")["status"],
        "tuningState": state,
    }
    async with running_operator(settings):
        resumed = await eventually(
            lambda: obj(kube, RM, "ns1", "rm1")["status"]["tuningState"]["decisions"] > 41
        )
        assert resumed
        status = obj(kube, RM, "ns1", "rm1")["status"]
        assert status["applied"]["generation"] == 7 and status["applied"]["batchSize"] == 128
        assert obj(kube, "v1/secrets", "ns1", "rm1-admin-token")["metadata"]["uid"] == uid
