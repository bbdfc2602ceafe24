"""Pure builders, no emulator: children, pod templates, config documents, status and conditions.

Every object rendered from every example is also validated against the official Kubernetes JSON
schemas (kubernetes-validate, strict: unknown fields fail), since the emulator checks nothing.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from recsched_operator.cli import load_recmodel, render_recmodel
from recsched_operator.errors import InvalidSpecError
from recsched_operator.recmodel import conditions as cond
from recsched_operator.recmodel.api import parse_spec
from recsched_operator.recmodel.children import render_children
from recsched_operator.recmodel.config_document import config_for_spec, initial_config
from recsched_operator.recmodel.deployments import container_args, render_deployment
from recsched_operator.recmodel.naming import Owner
from recsched_operator.recmodel.status import pool_conditions, pool_status

EXAMPLES = sorted((Path(__file__).parents[2] / "crds" / "examples").glob("*.yaml"))
KUBERNETES_VERSION = "1.33.0"
OWNER = Owner(name="rm", namespace="ns", uid="1234")
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def spec(**changes: Any) -> Any:
    raw: dict[str, Any] = {
        "model": {"name": "din", "scale": 0.5, "image": "img:1"},
        "slo": {"targetMs": 40},
        "pools": {"cpu": {"replicas": 2, "workers": 6}, "gpu": {"replicas": 1, "device": "cuda"}},
        "tuning": {"offloadThreshold": {"min": 64, "max": 1025, "initial": 256}},
    }
    raw.update(changes)
    return parse_spec(raw)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_every_rendered_object_is_valid_kubernetes(example: Path) -> None:
    manifests = render_recmodel(load_recmodel(example))
    assert {m["kind"] for m in manifests} >= {"Secret", "ConfigMap", "Service", "Deployment"}
    for manifest in manifests:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_render_cli_prints_the_same_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    from recsched_operator.cli import main

    assert main(["render", str(EXAMPLES[0])]) == 0
    printed = list(yaml.safe_load_all(capsys.readouterr().out))
    assert printed == render_recmodel(load_recmodel(EXAMPLES[0]))


@pytest.mark.parametrize(
    ("role", "device", "gpu_requested"),
    [("cpu", "cpu", False), ("gpu", "cuda", True)],
)
def test_pool_pods_get_contract_args_and_gpu_requests(
    role: Any, device: str, gpu_requested: bool
) -> None:
    deployment = render_deployment(OWNER, spec(), role)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("--device") + 1] == device
    assert args[args.index("--pool") + 1] == role
    assert args[args.index("--recmodel") + 1] == "rm"
    assert args[args.index("--config") + 1] == "/etc/recsched/config.json"
    assert args[args.index("--admin-token-file") + 1] == "/var/run/recsched/token"
    limits = container["resources"].get("limits", {})
    assert ("nvidia.com/gpu" in limits) is gpu_requested


def test_emulated_gpu_pool_requests_no_gpu() -> None:
    emulated = spec(pools={"gpu": {"replicas": 1, "device": "emulated"}})
    container = render_deployment(OWNER, emulated, "gpu")["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert "nvidia.com/gpu" not in str(container["resources"])


def test_router_gets_pool_dns_names() -> None:
    args = container_args(OWNER, spec(), "router")
    assert args[args.index("--cpu-endpoints-dns") + 1] == "rm-cpu-pods.ns.svc:8000"
    assert args[args.index("--gpu-endpoints-dns") + 1] == "rm-gpu-pods.ns.svc:8000"
    assert "--workers" not in args


@pytest.mark.parametrize("role", ["router", "cpu", "gpu"])
def test_pod_templates_are_restricted_and_probed(role: Any) -> None:
    template = render_deployment(OWNER, spec(), role)["spec"]["template"]
    pod = template["spec"]
    container = pod["containers"][0]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert not pod["automountServiceAccountToken"]


def test_tuning_never_touches_pod_templates() -> None:
    before = render_children(OWNER, spec(), initial_config(spec()))
    tuned = initial_config(spec())
    tuned = type(tuned)(generation=9, batch_size=512, offload_threshold=64, workers=6)
    after = render_children(OWNER, spec(), tuned)
    deployments = [(b, a) for b, a in zip(before, after, strict=True) if b["kind"] == "Deployment"]
    assert deployments and all(b == a for b, a in deployments)
    assert before[0]["data"] != after[0]["data"]  # only the ConfigMap changes


@pytest.mark.parametrize(
    ("cpu", "gpu", "deployments"),
    [
        (2, 0, {"rm-router", "rm-cpu"}),
        (0, 1, {"rm-router", "rm-gpu"}),
        (1, 1, {"rm-router", "rm-cpu", "rm-gpu"}),
    ],
)
def test_deployments_only_for_pools_with_replicas(
    cpu: int, gpu: int, deployments: set[str]
) -> None:
    pools = {"cpu": {"replicas": cpu}, "gpu": {"replicas": gpu}}
    children = render_children(OWNER, spec(pools=pools), initial_config(spec(pools=pools)))
    assert {c["metadata"]["name"] for c in children if c["kind"] == "Deployment"} == deployments
    assert all(c["metadata"]["ownerReferences"][0]["uid"] == "1234" for c in children)


@pytest.mark.parametrize(
    ("applied", "expected"),
    [
        (None, (1, 64, 256)),
        ({"generation": 4, "batchSize": 128, "offloadThreshold": 512, "workers": 6}, (4, 128, 512)),
        (
            {"generation": 4, "batchSize": 4096, "offloadThreshold": 512, "workers": 6},
            (5, 1024, 512),
        ),
        ({"generation": 4, "batchSize": 128, "offloadThreshold": 8, "workers": 6}, (5, 128, 64)),
        ({"generation": 4, "batchSize": 128, "offloadThreshold": 512, "workers": 2}, (5, 128, 512)),
    ],
)
def test_config_keeps_tuned_knobs_clamped_and_bumps_generation_on_change(
    applied: dict[str, int] | None, expected: tuple[int, int, int]
) -> None:
    config = config_for_spec(spec(), applied)
    assert (config.generation, config.batch_size, config.offload_threshold) == expected
    assert config.workers == 6


def test_no_gpu_pool_pins_threshold_to_no_offload() -> None:
    cpu_only = spec(pools={"cpu": {"replicas": 1}})
    assert initial_config(cpu_only).offload_threshold == 1025


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model": {"name": "bert", "image": "i"}}, "spec.model.name"),
        (
            {"tuning": {"batchSize": {"min": 64, "max": 8, "initial": 16}}},
            "spec.tuning.batchSize.min",
        ),
        (
            {"tuning": {"batchSize": {"min": 1, "max": 8, "initial": 16}}},
            "spec.tuning.batchSize.initial",
        ),
        (
            {"tuning": {"offloadThreshold": {"min": 64, "max": 1025, "initial": 2}}},
            "spec.tuning.offloadThreshold.initial",
        ),
        ({"slo": {"targetMs": 0}}, "spec.slo.targetMs"),
        ({"pools": {"cpu": {"replicas": 0}, "gpu": {"replicas": 0}}}, "spec.pools"),
    ],
)
def test_invalid_specs_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        spec(**changes)
    assert caught.value.field == field


def test_condition_transition_time_moves_only_when_status_flips() -> None:
    later = NOW + datetime.timedelta(minutes=5)
    first = cond.set_condition(
        [], type_="Ready", status="False", reason="A", message="a", now=NOW, observed_generation=1
    )
    same = cond.set_condition(
        first,
        type_="Ready",
        status="False",
        reason="B",
        message="b",
        now=later,
        observed_generation=2,
    )
    flipped = cond.set_condition(
        same,
        type_="Ready",
        status="True",
        reason="C",
        message="c",
        now=later,
        observed_generation=2,
    )
    assert same[0]["lastTransitionTime"] == "2026-01-02T03:04:05Z" and same[0]["reason"] == "B"
    assert flipped[0]["lastTransitionTime"] == "2026-01-02T03:09:05Z"
    assert len(flipped) == 1 and flipped[0]["observedGeneration"] == 2


def test_ready_needs_every_requested_pool() -> None:
    deployments: dict[Any, Any] = {
        "router": {"status": {"readyReplicas": 1}},
        "cpu": {"status": {"readyReplicas": 1}},
        "gpu": None,
    }
    pools = pool_status(spec(), deployments)
    conditions = pool_conditions([], pools, generation=3, now=NOW)
    by_type = {c["type"]: c for c in conditions}
    assert by_type["CPUPoolReady"]["message"] == "1/2 ready"
    assert by_type["GPUPoolReady"]["status"] == "False"
    assert by_type["Ready"]["status"] == "False"
    assert "cpu" in by_type["Ready"]["message"] and "gpu" in by_type["Ready"]["message"]
