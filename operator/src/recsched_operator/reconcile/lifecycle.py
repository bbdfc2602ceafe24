"""Operator start-up and shutdown: kopf settings, API login, the shared context, the 8080 server.

Kopf and the operator's own API client log in with the same `ConnectionInfo`: an explicit URL from
settings when given (local clusters, tests), else the in-cluster service account, else kubeconfig.

Peering: when kopf is given a peering name it makes peering mandatory, and with the peering CRD
absent, or the named peering object (cluster-wide: the ClusterKopfPeering; namespaced: the
KopfPeering in any watched namespace) absent, it pauses every watch forever, logging only at
debug level. So start-up checks them before kopf starts watching and fails with a message naming
what to install (`helm/recsched/crds/kopfpeerings.kopf.dev.yaml`), what to create, or
`--standalone`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import kopf

from recsched_operator.errors import KubeApiError
from recsched_operator.metrics import HealthServer, OperatorMetrics
from recsched_operator.recmodel.api import GROUP
from recsched_operator.reconcile.context import OperatorContext
from recsched_operator.reconcile.kube_api import KubeApi, KubeConnection
from recsched_operator.settings import OperatorSettings

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
FINALIZER = f"{GROUP}/finalizer"
PEERING_API_VERSIONS = ("kopf.dev/v1", "zalando.org/v1")
"""Where kopf looks for its peering resources, in its own order (the second is the legacy group)."""


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """Our finalizer and annotation keys, event posting, and a peering priority that never ties."""
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    kopf_settings.posting.level = logging.INFO
    kopf_settings.peering.name = settings.peering_name
    # Kopf lets same-priority peers run side by side; distinct priorities make exactly one active,
    # the others paused until its keep-alives stop.
    kopf_settings.peering.priority = (
        settings.peering_priority
        if settings.peering_priority is not None
        else random.SystemRandom().randint(1, 2**31 - 1)
    )
    kopf_settings.scanning.disabled = True


def resolve_connection(
    settings: OperatorSettings, kopf_settings: kopf.OperatorSettings
) -> kopf.ConnectionInfo:
    """Where the API server is, for kopf and for `KubeApi` alike."""
    if settings.kube_api_url:
        token = settings.kube_api_token.get_secret_value() if settings.kube_api_token else None
        return kopf.ConnectionInfo(
            server=settings.kube_api_url, token=token, insecure=settings.kube_api_insecure
        )
    info = kopf.login_with_service_account(settings=kopf_settings) or kopf.login_with_kubeconfig(
        settings=kopf_settings
    )
    if info is None:
        raise kopf.LoginError(
            "No API server: set RECSCHED_KUBE_API_URL, run in-cluster, or add a kubeconfig."
        )
    return info


def kube_connection(info: kopf.ConnectionInfo) -> KubeConnection:
    """Translate kopf's ConnectionInfo; in-cluster tokens are re-read because they rotate."""
    if info.ca_data or info.certificate_data or info.private_key_data:
        raise kopf.LoginError("Inline certificate data is not supported; use file paths.")
    in_cluster = info.server == "https://kubernetes.default.svc"
    return KubeConnection(
        server=info.server,
        token=None if in_cluster else info.token,
        token_path=SERVICE_ACCOUNT_TOKEN if in_cluster else None,
        ca_path=str(info.ca_path) if info.ca_path else None,
        insecure=bool(info.insecure),
        certificate_path=str(info.certificate_path) if info.certificate_path else None,
        private_key_path=str(info.private_key_path) if info.private_key_path else None,
    )


def _is_pattern(namespace: str) -> bool:
    """Kopf's namespace patterns: globs, negations and comma-separated lists."""
    return any(char in namespace for char in "*?[]!,")


async def check_peering(
    kube: KubeApi, kopf_settings: kopf.OperatorSettings, namespaces: Sequence[str] = ()
) -> None:
    """Fail start-up when kopf's mandatory peering could never activate (it would pause forever).

    Standalone or optional peering needs nothing. Cluster-wide, the named ClusterKopfPeering must
    exist too. Namespaced, kopf waits for the named KopfPeering in every watched namespace, so
    each of `namespaces` (the `--namespace` flags) must hold one; a pattern (a glob) is skipped,
    since resolving it would need the right to list namespaces, which a namespaced operator's
    Role does not give.
    """
    peering = kopf_settings.peering
    if peering.standalone or not peering.mandatory:
        return
    plural = "clusterkopfpeerings" if peering.clusterwide else "kopfpeerings"
    for api_version in PEERING_API_VERSIONS:
        try:
            if plural not in await kube.served_plurals(api_version):
                continue
            if peering.clusterwide:
                found = peering.name in await kube.list_names(api_version, plural, None)
                where = "" if found else " cluster-wide"
            else:
                missing = [
                    namespace
                    for namespace in dict.fromkeys(namespaces)
                    if not _is_pattern(namespace)
                    and peering.name not in await kube.list_names(api_version, plural, namespace)
                ]
                label = "namespace" if len(missing) == 1 else "namespaces"
                where = f" in {label} {', '.join(missing)}" if missing else ""
        except KubeApiError as exc:
            raise kopf.PermanentError(f"cannot check kopf peering: {exc}") from exc
        if where:
            raise kopf.PermanentError(
                f"peering object {plural}/{peering.name} ({api_version}) does not exist{where}: "
                "create it (the Helm chart's templates/peering.yaml does), "
                "or run with --standalone (one replica only)"
            )
        return
    raise kopf.PermanentError(
        f"peering CRD {plural}.kopf.dev is not installed, so kopf would pause every watch: "
        "install helm/recsched/crds/kopfpeerings.kopf.dev.yaml, "
        "or run with --standalone (one replica only)"
    )


async def start(
    settings: OperatorSettings,
    kopf_settings: kopf.OperatorSettings,
    namespaces: Sequence[str] = (),
) -> tuple[OperatorContext, HealthServer]:
    """Configure kopf, log in, check peering (`namespaces`: the watched ones, none when
    cluster-wide), start the metrics server; the context the handlers share."""
    configure_kopf(kopf_settings, settings)
    info = resolve_connection(settings, kopf_settings)
    kube = KubeApi(kube_connection(info), timeout_s=settings.api_timeout_s)
    try:
        await check_peering(kube, kopf_settings, namespaces)
    except kopf.PermanentError:
        await kube.aclose()
        raise
    metrics = OperatorMetrics()
    server = HealthServer(metrics, host=settings.metrics_host, port=settings.metrics_port)
    await server.start()
    return OperatorContext(settings=settings, kube=kube, metrics=metrics), server


async def stop(context: OperatorContext, server: HealthServer) -> None:
    await server.stop()
    await context.kube.aclose()
