"""`recsched-operator run` and kopf peering, against the emulated API.

Kopf makes peering mandatory whenever it gets a peering name and then pauses every watch until the
peering resources appear: with their CRD absent that was forever, silently (found by hand with
`run --standalone`). Standalone runs must reconcile with no peering CRD at all; peering runs must
fail at start-up with a message naming what is missing.
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


def run_options(kube: KubeEmulator, *flags: str) -> dict[str, object]:
    args = build_parser().parse_args(["run", *flags])
    return kopf_run_options(args, operator_settings(kube))


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
    kube.objects[CLUSTER_PEERINGS, None, "recsched"] = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": "recsched", "resourceVersion": "0"},
    }
    async with running_operator(operator_settings(kube), kopf_options=run_options(kube)):
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
