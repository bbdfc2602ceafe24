"""The pods the operator renders would start: one renderer, checked against `recsched-pod` itself.

For every example RecModel, every container of every rendered Deployment is read the way the pod
reads it: its `args` through `recsched-pod`'s own argument parser and `PodSettings`, with the
volumes it mounts materialised from the rendered ConfigMap and Secret (what the kubelet would
do). Any flag the pod would reject fails here, and so do the promises the pod spec makes about the
process: it listens on the probed port on every interface, serves the rendered config document,
holds the rendered token, and the router's DNS names parse as the pod's endpoint source does.
Then one pod and one router start from rendered args, translated as local mode does
(`recsched_operator.local.plan`), and must become ready and answer a query.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import yaml

from recsched_operator.cli import render_recmodel
from recsched_operator.local.plan import LocalPlan, plan_local_run, rendered_pods
from recsched_operator.local.processes import write_run_files
from recsched_operator.recmodel.api import parse_spec
from recsched_operator.recmodel.config_document import initial_config
from recsched_operator.recmodel.naming import HTTP_PORT, Owner
from recsched_pod.cli import build_parser, settings_from_args
from recsched_pod.config_document import parse_config_document
from recsched_pod.models import model_spec, random_query
from recsched_pod.router.endpoints import resolve_dns
from recsched_pod.settings import PodSettings
from support.pod_fixtures import json_body
from support.pod_process import stop_process
from support.ports import free_port
from support.waiting import wait_until

ROOT = Path(__file__).parents[2]
EXAMPLES = sorted((ROOT / "crds" / "examples").glob("*.yaml"))
ALL_INTERFACES = {"0.0.0.0", "::"}


def render_example(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    recmodel = yaml.safe_load(path.read_text(encoding="utf-8"))
    return recmodel, render_recmodel(recmodel)


def materialise_volumes(
    pod_spec: Mapping[str, Any],
    container: Mapping[str, Any],
    children: list[dict[str, Any]],
    root: Path,
) -> dict[str, str]:
    """Write each mounted ConfigMap key and Secret key under `root` as the kubelet would under
    the mount path; returns mount path -> local folder."""
    by_name = {(child["kind"], child["metadata"]["name"]): child for child in children}
    volumes = {volume["name"]: volume for volume in pod_spec["volumes"]}
    folders: dict[str, str] = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        folder = root / mount["mountPath"].lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            files = by_name[("ConfigMap", volume["configMap"]["name"])]["data"]
        elif "secret" in volume:
            files = by_name[("Secret", volume["secret"]["secretName"])]["stringData"]
        else:
            files = {}
        for key, text in files.items():
            (folder / key).write_text(text, encoding="utf-8")
        folders[mount["mountPath"].rstrip("/") + "/"] = str(folder) + "/"
    return folders


def on_local_volumes(args: list[str], folders: Mapping[str, str]) -> list[str]:
    """The args with every path on a mounted volume moved to the materialised folder."""
    moved = []
    for arg in args:
        mount = next((m for m in folders if arg.startswith(m)), None)
        moved.append(arg if mount is None else folders[mount] + arg[len(mount) :])
    return moved


def pod_settings_for(args: list[str], capsys: pytest.CaptureFixture[str]) -> PodSettings:
    """`recsched-pod ARGS` as far as the pod validates before it starts; fails with its words."""
    try:
        build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"recsched-pod rejects {args}: {capsys.readouterr().err}")
    settings, _ = settings_from_args(args)
    return settings


def rendered_deployments(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [child for child in children if child["kind"] == "Deployment"]


def check_router_finds_the_pools(
    settings: PodSettings,
    children: list[dict[str, Any]],
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The router's DNS names, resolved by the pod's own code, ask for the headless Services on
    the pods' port (resolution faked: no cluster DNS here)."""
    asked: list[tuple[str, int]] = []

    def getaddrinfo(host: str, port: int, *_: Any, **__: Any) -> list[Any]:
        asked.append((host, port))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    with monkeypatch.context() as dns:
        dns.setattr(socket, "getaddrinfo", getaddrinfo)
        for pool, name in (
            ("cpu", settings.cpu_endpoints_dns),
            ("gpu", settings.gpu_endpoints_dns),
        ):
            assert name is not None, f"the router is not told where the {pool} pods are"
            assert resolve_dns(name) == [f"10.0.0.7:{HTTP_PORT}"]
    headless = {
        child["metadata"]["name"]
        for child in children
        if child["kind"] == "Service" and child["spec"].get("clusterIP") == "None"
    }
    assert sorted(asked) == sorted((f"{name}.{namespace}.svc", HTTP_PORT) for name in headless)


@pytest.fixture(autouse=True)
def _no_ambient_pod_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the rendered args count: RECSCHED_* variables of the test run would hide a gap."""
    for name in list(os.environ):
        if name.startswith("RECSCHED_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_every_rendered_container_starts_with_the_pods_own_settings(
    example: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recmodel, children = render_example(example)
    spec = parse_spec(recmodel["spec"])
    deployments = rendered_deployments(children)
    assert deployments, f"{example.name} renders no Deployment"
    for deployment in deployments:
        role = deployment["spec"]["template"]["metadata"]["labels"]["recsched.io/pool"]
        pod_spec = deployment["spec"]["template"]["spec"]
        for container in pod_spec["containers"]:
            root = tmp_path / deployment["metadata"]["name"] / container["name"]
            folders = materialise_volumes(pod_spec, container, children, root)
            settings = pod_settings_for(on_local_volumes(container["args"], folders), capsys)

            http_port = next(p for p in container["ports"] if p["name"] == "http")
            assert settings.port == http_port["containerPort"] == HTTP_PORT
            assert settings.host in ALL_INTERFACES, "probes and Services reach the pod IP"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["port"] == "http"
            assert settings.recmodel == recmodel["metadata"]["name"]
            assert settings.model == spec.model.name and settings.scale == spec.model.scale
            assert settings.admin_token is not None, "the mounted Secret holds the token"

            assert settings.config_path is not None
            served = parse_config_document(settings.config_path.read_bytes(), "mounted config")
            assert served.to_json_dict() == initial_config(spec).to_json_dict()

            if role == "router":
                assert settings.role == "router"
                namespace = recmodel["metadata"].get("namespace", "default")
                check_router_finds_the_pools(settings, children, namespace, monkeypatch)
            else:
                assert settings.role == "pod" and settings.pool_label == role
                pool = spec.pools.cpu if role == "cpu" else spec.pools.gpu
                assert settings.initial_workers == pool.workers
                expected_device = "cpu" if role == "cpu" else spec.pools.gpu.device
                assert settings.device == expected_device


def test_local_mode_runs_exactly_the_rendered_args_translated() -> None:
    """Beyond the documented translation, a local process gets the rendered container's args."""
    recmodel, _ = render_example(ROOT / "crds" / "examples" / "recmodel-local-demo.yaml")
    owner = Owner(recmodel["metadata"]["name"], "default", "local")
    spec = parse_spec(recmodel["spec"])
    plan = plan_local_run(owner, spec, Path("/run"), itertools.count(9000), "python")
    translated = {"--host", "--port", "--config", "--admin-token-file"}
    for role, _replicas, container in rendered_pods(owner, spec):
        process = plan.by_role(role)[0]
        cluster = dict(zip(container["args"][::2], container["args"][1::2], strict=True))
        local = dict(zip(process.argv[3::2], process.argv[4::2], strict=True))
        kept = {flag: value for flag, value in cluster.items() if flag not in translated}
        if role == "router":
            kept = {f: v for f, v in kept.items() if not f.endswith("-endpoints-dns")}
            assert local["--endpoints-file"] == "/run/endpoints.json"
        assert kept.items() <= local.items()
        assert (local["--host"], local["--port"]) == ("127.0.0.1", str(process.port))
        assert local["--config"] == "/run/config.json"
        assert local["--admin-token-file"] == "/run/admin-token"


def tiny_plan(run_dir: Path) -> LocalPlan:
    """The local demo's RecModel (NCF at scale 0.01) cut to one one-worker CPU pod."""
    recmodel, _ = render_example(ROOT / "crds" / "examples" / "recmodel-local-demo.yaml")
    raw = recmodel["spec"]
    raw["pools"] = {"cpu": {"replicas": 1, "workers": 1}, "gpu": {"replicas": 0}}
    spec = parse_spec(raw)
    owner = Owner(recmodel["metadata"]["name"], "default", "local")
    ports: Iterator[int] = iter(free_port, None)
    plan = plan_local_run(owner, spec, run_dir, ports, sys.executable)
    write_run_files(plan, initial_config(spec))
    return plan


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_pod_and_a_router_from_rendered_args_become_ready_and_serve(tmp_path: Path) -> None:
    plan = tiny_plan(tmp_path)
    assert [p.role for p in plan.processes] == ["cpu", "router"]
    running: list[subprocess.Popen[bytes]] = []
    try:
        for process in plan.processes:
            with (tmp_path / f"{process.name}.log").open("wb") as log:
                running.append(subprocess.Popen(process.argv, stdout=log, stderr=subprocess.STDOUT))

        def all_ready() -> bool:
            for process, popen in zip(plan.processes, running, strict=True):
                log = (tmp_path / f"{process.name}.log").read_text(errors="replace")
                assert popen.poll() is None, f"{process.name} exited: {log[-2000:]}"
                try:
                    url = process.base_url + "/v2/health/ready"
                    if httpx.get(url, timeout=1.0).status_code != 200:
                        return False
                except httpx.TransportError:
                    return False
            return True

        wait_until(all_ready, timeout_s=90.0, interval_s=0.2)
        token = plan.token_path.read_text(encoding="utf-8")
        pod = plan.by_role("cpu")[0]
        served = httpx.get(
            pod.base_url + "/admin/config", headers={"Authorization": f"Bearer {token}"}
        )
        assert served.status_code == 200
        assert (
            served.json()
            == parse_config_document(plan.config_path.read_bytes(), "run file").to_json_dict()
        )
        dense, sparse = random_query(
            model_spec("ncf", scale=0.01), 4, torch.Generator().manual_seed(0)
        )
        body = json_body(None if dense is None else dense.numpy(), sparse.numpy())
        answer = httpx.post(plan.front_door.base_url + "/v2/models/ncf/infer", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["shape"][0] == 4
    finally:
        for popen in running:
            stop_process(popen)
