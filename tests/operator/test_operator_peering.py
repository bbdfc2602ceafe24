"""`recsched-operator run` and kopf peering, against the emulated API.

Kopf makes peering mandatory whenever it gets a peering name and then pauses every watch until the
peering resources appear: with their CRD absent that was forever, silently (found by hand with
`run --standalone`). Standalone runs must reconcile with no peering CRD at all; peering runs must
fail at start-up with a message naming what is missing: cluster-wide, the CRD or the
ClusterKopfPeering; namespaced (`-n`), the CRD or the KopfPeering of any watched namespace.
"""

from __future__ import annotations

import asyncio

import kopf
import pytest

from recsched_operator.cli import build_parser, kopf_run_options, main
from recsched_operator.settings import OperatorSettings
from support.kube_emulator import KubeEmulator
from support.operator_harness import (
    create,
    eventually,
    failed_start,
    obj,
    operator_settings,
    recmodel,
    running_operator,
)

pytestmark = pytest.mark.timeout(60)
CLUSTER_PEERINGS = "kopf.dev/v1/clusterkopfpeerings"
NAMESPACED_PEERINGS = "kopf.dev/v1/kopfpeerings"


def run_options(kube: KubeEmulator, *flags: str) -> dict[str, object]:
    args = build_parser().parse_args(["run", *flags])
    return kopf_run_options(args, operator_settings(kube))


def namespaced_run_options(kube: KubeEmulator, *namespaces: str) -> dict[str, object]:
    """`run -n NS ...`; the emulator's requests then count against the namespace-scope RBAC."""
    kube.namespaced_operator = True
    return run_options(kube, *(flag for namespace in namespaces for flag in ("-n", namespace)))


def add_peering(kube: KubeEmulator, namespace: str | None) -> None:
    """The peering object the Helm chart creates (cluster-wide, or in `namespace`)."""
    resource, kind = (
        (CLUSTER_PEERINGS, "ClusterKopfPeering")
        if namespace is None
        else (NAMESPACED_PEERINGS, "KopfPeering")
    )
    metadata = {"name": "recsched", "resourceVersion": "0"}
    if namespace is not None:
        metadata["namespace"] = namespace
    kube.objects[resource, namespace, "recsched"] = {
        "apiVersion": "kopf.dev/v1",
        "kind": kind,
        "metadata": metadata,
    }


def test_standalone_flag_passes_no_peering_name() -> None:
    args = build_parser().parse_args(["run", "--standalone", "-n", "ns1"])
    settings = OperatorSettings(kube_api_url="http://127.0.0.1:9", peering_name="recsched")
    assert kopf_run_options(args, settings) == {
        "standalone": True,
        "namespaces": ["ns1"],
        "clusterwide": False,
        "peering_name": None,
    }


async def test_standalone_run_reconciles_without_peering_crds(kube: KubeEmulator) -> None:
    options = run_options(kube, "--standalone")
    async with running_operator(operator_settings(kube), kopf_options=options):
        await create(kube, recmodel())
        await eventually(lambda: obj(kube, "apps/v1/deployments", "ns1", "rm1-cpu"))


async def test_peering_run_without_the_crd_fails_start_naming_it(kube: KubeEmulator) -> None:
    error = await failed_start(operator_settings(kube), run_options(kube))
    cause = error.__cause__
    assert isinstance(cause, kopf.PermanentError), repr(error)
    assert "clusterkopfpeerings.kopf.dev is not installed" in str(cause)
    assert "--standalone" in str(cause)


async def test_peering_run_without_the_peering_object_fails_start(kube: KubeEmulator) -> None:
    kube.declare(CLUSTER_PEERINGS, "ClusterKopfPeering", namespaced=False)
    error = await failed_start(operator_settings(kube), run_options(kube))
    assert isinstance(error.__cause__, kopf.PermanentError), repr(error)
    assert "clusterkopfpeerings/recsched" in str(error.__cause__)


async def test_peering_run_with_crd_and_object_reconciles(kube: KubeEmulator) -> None:
    kube.declare(CLUSTER_PEERINGS, "ClusterKopfPeering", namespaced=False)
    add_peering(kube, None)
    async with running_operator(operator_settings(kube), kopf_options=run_options(kube)):
        await create(kube, recmodel())
        await eventually(lambda: obj(kube, "apps/v1/deployments", "ns1", "rm1-cpu"))


async def test_namespaced_run_without_the_crd_fails_start_naming_it(kube: KubeEmulator) -> None:
    error = await failed_start(operator_settings(kube), namespaced_run_options(kube, "ns1"))
    assert isinstance(error.__cause__, kopf.PermanentError), repr(error)
    assert "kopfpeerings.kopf.dev is not installed" in str(error.__cause__)


async def test_namespaced_run_fails_start_naming_the_namespace_without_its_peering_object(
    kube: KubeEmulator,
) -> None:
    # Kopf would wait for a KopfPeering in every watched namespace: one missing pauses them all.
    kube.declare(NAMESPACED_PEERINGS, "KopfPeering")
    add_peering(kube, "ns1")
    add_peering(kube, "other")  # not watched: it does not stand in for ns2's
    options = namespaced_run_options(kube, "ns1", "ns2")
    error = await failed_start(operator_settings(kube), options)
    cause = error.__cause__
    assert isinstance(cause, kopf.PermanentError), repr(error)
    assert "kopfpeerings/recsched (kopf.dev/v1) does not exist in namespace ns2:" in str(cause)
    assert "ns1" not in str(cause) and "--standalone" in str(cause)


async def test_namespaced_run_with_a_peering_object_per_watched_namespace_reconciles(
    kube: KubeEmulator,
) -> None:
    kube.declare(NAMESPACED_PEERINGS, "KopfPeering")
    add_peering(kube, "ns1")
    add_peering(kube, "ns2")
    options = namespaced_run_options(kube, "ns1", "ns2")
    async with running_operator(operator_settings(kube), kopf_options=options):
        await create(kube, recmodel())
        await eventually(lambda: obj(kube, "apps/v1/deployments", "ns1", "rm1-cpu"))


async def test_cli_run_exits_with_the_peering_error(
    kube: KubeEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RECSCHED_KUBE_API_URL", str(kube.url).rstrip("/"))
    monkeypatch.setenv("RECSCHED_METRICS_PORT", "0")
    # kopf.run starts its own event loop, so the CLI runs in a thread beside the emulator's loop.
    assert await asyncio.to_thread(main, ["run"]) == 1
    assert "peering CRD clusterkopfpeerings.kopf.dev is not installed" in capsys.readouterr().err


async def test_cli_run_checks_the_peering_object_of_each_namespace_it_watches(
    kube: KubeEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kube.declare(NAMESPACED_PEERINGS, "KopfPeering")
    kube.namespaced_operator = True
    monkeypatch.setenv("RECSCHED_KUBE_API_URL", str(kube.url).rstrip("/"))
    monkeypatch.setenv("RECSCHED_METRICS_PORT", "0")
    assert await asyncio.to_thread(main, ["run", "--namespace", "ns1"]) == 1
    assert "kopfpeerings/recsched (kopf.dev/v1) does not exist in namespace ns1" in (
        capsys.readouterr().err
    )
