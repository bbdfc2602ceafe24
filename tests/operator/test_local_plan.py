"""Local mode's plan: which processes a RecModel gets, their command lines (the rendered pod specs'
args, translated for one machine), the router's endpoints and Prometheus' file-based discovery,
all derived without starting anything. `tests/contracts/test_rendered_pods_start.py` starts them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from recsched_operator.local.plan import (
    LocalPlanError,
    endpoints_document,
    file_sd_targets,
    local_args,
    local_env,
    plan_local_run,
    prometheus_config,
)
from recsched_operator.recmodel.api import parse_spec
from recsched_operator.recmodel.deployments import render_deployment
from recsched_operator.recmodel.naming import Owner

OWNER = Owner("demo", "team-a", "local")


def spec(**pools: Any) -> Any:
    return parse_spec(
        {
            "model": {"name": "wnd", "scale": 0.01, "image": "x"},
            "slo": {"percentile": 95, "targetMs": 25},
            "pools": pools,
            "router": {"replicas": 1},
        }
    )


def plan_for(**pools: Any) -> Any:
    return plan_local_run(OWNER, spec(**pools), Path("/run"), itertools.count(9000), "python")


def test_each_pool_replica_gets_a_pod_and_the_router_fronts_them() -> None:
    plan = plan_for(cpu={"replicas": 2, "workers": 3}, gpu={"replicas": 1, "device": "emulated"})
    assert [(p.name, p.role, p.port) for p in plan.processes] == [
        ("cpu-0", "cpu", 9000),
        ("cpu-1", "cpu", 9001),
        ("gpu-0", "gpu", 9002),
        ("router-0", "router", 9003),
    ]
    assert plan.prometheus_port == 9004
    assert plan.front_door.name == "router-0"
    cpu_argv = plan.processes[0].argv
    assert cpu_argv[:4] == ("python", "-m", "recsched_pod", "--role")
    assert ("--workers", "3") in itertools.pairwise(cpu_argv)
    gpu_argv = plan.processes[2].argv
    assert ("--device", "emulated") in itertools.pairwise(gpu_argv)
    router_argv = plan.processes[3].argv
    assert ("--endpoints-file", "/run/endpoints.json") in itertools.pairwise(router_argv)
    for process in plan.processes:
        pairs = set(zip(process.argv, process.argv[1:], strict=False))
        assert ("--host", "127.0.0.1") in pairs
        assert ("--recmodel", "demo") in pairs
        assert ("--config", "/run/config.json") in pairs


def test_router_endpoints_list_each_pool() -> None:
    plan = plan_for(cpu={"replicas": 2}, gpu={"replicas": 1, "device": "emulated"})
    assert endpoints_document(plan) == {
        "cpu": ["127.0.0.1:9000", "127.0.0.1:9001"],
        "gpu": ["127.0.0.1:9002"],
    }


def test_prometheus_discovers_every_process_with_the_namespace_label() -> None:
    plan = plan_for(cpu={"replicas": 1})
    targets = file_sd_targets(plan)
    assert [t["targets"] for t in targets] == [["127.0.0.1:9000"], ["127.0.0.1:9001"]]
    assert all(t["labels"]["namespace"] == "team-a" for t in targets)
    config = json.loads(prometheus_config(plan))
    assert config["global"]["scrape_interval"] == "1s"
    assert config["scrape_configs"][0]["file_sd_configs"][0]["files"] == ["/run/targets.json"]


def test_only_emulated_gpu_pods_get_the_gpu_profile() -> None:
    pools = {"cpu": {"replicas": 1}, "gpu": {"replicas": 1, "device": "emulated"}}
    plan = plan_local_run(
        OWNER, spec(**pools), Path("/run"), itertools.count(9000), "python", "nvidia-h200"
    )
    cpu, gpu = plan.by_role("cpu")[0], plan.by_role("gpu")[0]
    assert ("--gpu-profile", "nvidia-h200") in itertools.pairwise(gpu.argv)
    assert "--gpu-profile" not in cpu.argv
    assert "--gpu-profile" not in plan.front_door.argv
    cuda = plan_local_run(
        OWNER,
        spec(cpu={"replicas": 1}, gpu={"replicas": 1, "device": "cuda"}),
        Path("/run"),
        itertools.count(9000),
        "python",
        "nvidia-h200",
    )
    assert "--gpu-profile" not in cuda.by_role("gpu")[0].argv
    assert "--gpu-profile" not in plan_for(**pools).by_role("gpu")[0].argv


def rendered_router() -> dict[str, Any]:
    container = render_deployment(OWNER, spec(cpu={"replicas": 1}), "router")
    result: dict[str, Any] = container["spec"]["template"]["spec"]["containers"][0]
    return result


def test_the_routers_dns_names_become_one_endpoints_file_and_files_move_to_the_run_dir() -> None:
    args = local_args(rendered_router(), port=9100, run_dir=Path("/run"))
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    assert "--cpu-endpoints-dns" not in pairs and "--gpu-endpoints-dns" not in pairs
    assert args.count("--endpoints-file") == 1
    assert pairs["--endpoints-file"] == "/run/endpoints.json"
    assert (pairs["--host"], pairs["--port"]) == ("127.0.0.1", "9100")
    assert pairs["--config"] == "/run/config.json"
    assert pairs["--admin-token-file"] == "/run/admin-token"
    assert pairs["--role"] == "router" and pairs["--recmodel"] == "demo"


def test_a_flag_on_a_volume_local_mode_does_not_provide_fails_the_plan() -> None:
    container = rendered_router()
    container["args"] = [*container["args"], "--gpu-profile", "/etc/recsched/h200.json"]
    with pytest.raises(LocalPlanError, match=r"--gpu-profile /etc/recsched/h200\.json"):
        local_args(container, port=9100, run_dir=Path("/run"))


def test_literal_env_passes_through_and_env_from_a_secret_fails_the_plan() -> None:
    container = rendered_router()
    container["env"] = [{"name": "RECSCHED_SEED", "value": "7"}]
    assert local_env(container) == (("RECSCHED_SEED", "7"),)
    container["env"] = [{"name": "RECSCHED_ADMIN_TOKEN", "valueFrom": {"secretKeyRef": {}}}]
    with pytest.raises(LocalPlanError, match="RECSCHED_ADMIN_TOKEN"):
        local_env(container)
