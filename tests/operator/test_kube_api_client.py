"""KubeApi over the official client: what goes on the wire, and how answers map to results.

The emulator tests prove the operator works end to end; these pin down the mapping itself
against a bare recording HTTP server: server-side apply's content type and query, the bearer
token (re-read from its file on every request, since projected tokens rotate), 404/409 turned
into None/False, the client's `ApiException` turned into `KubeApiError` with the server's
message, transport failures and a closed client turned into status 0, and the TLS settings
mapped onto the client's `Configuration` (no TLS server here: no certificate tooling installed).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp.web
import pytest
from aiohttp.test_utils import TestServer

from recsched_operator.errors import KubeApiError
from recsched_operator.recmodel.naming import FIELD_MANAGER
from recsched_operator.reconcile.kube_api import KubeApi, KubeConnection, client_configuration

pytestmark = pytest.mark.timeout(30)
CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "cm1", "namespace": "ns1"},
    "data": {"k": "v"},
}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """Answers (method, path) with a canned (status, body); 200 `{}` otherwise."""

    answers: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                await request.read(),
            )
        )
        status, body = self.answers.get((request.method, request.path), (200, "{}"))
        return aiohttp.web.Response(status=status, text=body, content_type="application/json")


@pytest.fixture
async def server() -> AsyncIterator[Recorder]:
    recorder = Recorder()
    app = aiohttp.web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    async with TestServer(app, host="127.0.0.1", port=0) as test_server:
        recorder.url = str(test_server.make_url("")).rstrip("/")
        yield recorder


def status_body(code: int, message: str) -> str:
    return json.dumps({"kind": "Status", "status": "Failure", "code": code, "message": message})


async def test_apply_is_a_forced_server_side_apply_under_our_field_manager(
    server: Recorder,
) -> None:
    kube = KubeApi(KubeConnection(server=server.url, token="t0"), timeout_s=5.0)
    server.answers["PATCH", "/api/v1/namespaces/ns1/configmaps/cm1"] = (200, json.dumps(CONFIGMAP))
    try:
        assert await kube.apply(CONFIGMAP) == CONFIGMAP
    finally:
        await kube.aclose()
    (sent,) = server.seen
    assert (sent.method, sent.path) == ("PATCH", "/api/v1/namespaces/ns1/configmaps/cm1")
    assert sent.query == {"fieldManager": FIELD_MANAGER, "force": "true"}
    assert sent.headers["Content-Type"] == "application/apply-patch+yaml"
    assert sent.headers["Authorization"] == "Bearer t0"
    assert sent.headers["User-Agent"].startswith(f"{FIELD_MANAGER}/")
    assert json.loads(sent.body) == CONFIGMAP


async def test_token_is_reread_from_its_file_on_every_request(
    server: Recorder, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    kube = KubeApi(KubeConnection(server=server.url, token_path=str(token_file)), timeout_s=5.0)
    try:
        await kube.get("v1", "ConfigMap", "ns1", "cm1")
        token_file.write_text("rotated\n")
        await kube.get("v1", "ConfigMap", "ns1", "cm1")
    finally:
        await kube.aclose()
    assert [s.headers["Authorization"] for s in server.seen] == ["Bearer first", "Bearer rotated"]


async def test_no_credentials_send_no_authorization(server: Recorder) -> None:
    kube = KubeApi(KubeConnection(server=server.url), timeout_s=5.0)
    try:
        await kube.list("apps/v1", "Deployment", "ns1", label_selector="a=b")
    finally:
        await kube.aclose()
    (sent,) = server.seen
    assert "Authorization" not in sent.headers
    assert (sent.path, sent.query) == (
        "/apis/apps/v1/namespaces/ns1/deployments",
        {"labelSelector": "a=b"},
    )


async def test_absent_objects_are_none_or_false_not_errors(server: Recorder) -> None:
    gone = (404, status_body(404, "not found"))
    server.answers["GET", "/api/v1/namespaces/ns1/configmaps/cm1"] = gone
    server.answers["DELETE", "/api/v1/namespaces/ns1/configmaps/cm1"] = gone
    server.answers["POST", "/api/v1/namespaces/ns1/configmaps"] = (409, status_body(409, "exists"))
    server.answers["GET", "/apis/kopf.dev/v1"] = gone
    kube = KubeApi(KubeConnection(server=server.url), timeout_s=5.0)
    try:
        assert await kube.get("v1", "ConfigMap", "ns1", "cm1") is None
        assert await kube.delete("v1", "ConfigMap", "ns1", "cm1") is False
        assert await kube.create(CONFIGMAP) is False
        assert await kube.served_plurals("kopf.dev/v1") == set()
        assert await kube.create({**CONFIGMAP, "kind": "Secret"}) is True
    finally:
        await kube.aclose()
    assert server.seen[2].query == {"fieldManager": FIELD_MANAGER}


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (403, status_body(403, "configmaps is forbidden"), "configmaps is forbidden"),
        (500, "upstream exploded", "upstream exploded"),
        (404, status_body(404, "no such resource"), "no such resource"),
    ],
)
async def test_api_errors_become_kube_api_error_with_the_server_message(
    server: Recorder, status: int, body: str, message: str
) -> None:
    path = "/apis/recsched.io/v1alpha1/namespaces/ns1/recmodels/rm1/status"
    server.answers["PATCH", path] = (status, body)
    kube = KubeApi(KubeConnection(server=server.url), timeout_s=5.0)
    try:
        with pytest.raises(KubeApiError) as caught:
            await kube.patch_status("recsched.io/v1alpha1", "RecModel", "ns1", "rm1", {"a": 1})
    finally:
        await kube.aclose()
    assert (caught.value.status_code, str(caught.value)) == (status, f"HTTP {status}: {message}")
    assert server.seen[0].headers["Content-Type"] == "application/merge-patch+json"
    assert json.loads(server.seen[0].body) == {"status": {"a": 1}}


async def test_unreachable_server_and_closed_client_are_status_0(server: Recorder) -> None:
    unreachable = KubeApi(KubeConnection(server="http://127.0.0.1:9"), timeout_s=5.0)
    try:
        with pytest.raises(KubeApiError) as caught:
            await unreachable.get("v1", "Pod", "ns1", "p")
    finally:
        await unreachable.aclose()
    assert caught.value.status_code == 0
    kube = KubeApi(KubeConnection(server=server.url), timeout_s=5.0)
    await kube.aclose()
    assert kube.closed
    with pytest.raises(KubeApiError, match="closed"):
        await kube.get("v1", "Pod", "ns1", "p")
    assert server.seen == []


def test_tls_settings_map_onto_the_client_configuration() -> None:
    verified = client_configuration(
        KubeConnection(
            server="https://k8s:6443",
            ca_path="/ca.crt",
            certificate_path="/tls.crt",
            private_key_path="/tls.key",
        )
    )
    assert (verified.host, verified.verify_ssl, verified.ssl_ca_cert) == (
        "https://k8s:6443",
        True,
        "/ca.crt",
    )
    assert (verified.cert_file, verified.key_file) == ("/tls.crt", "/tls.key")
    assert verified.retries is None  # kopf's TemporaryError is the retry policy
    insecure = client_configuration(
        KubeConnection(server="https://k8s:6443", ca_path="/ca.crt", insecure=True)
    )
    assert (insecure.verify_ssl, insecure.ssl_ca_cert, insecure.cert_file) == (False, None, None)
