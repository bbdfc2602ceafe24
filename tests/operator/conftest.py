"""Operator test fixtures: the Kubernetes emulator with the resources the operator uses.

Every API request an emulator received is added to `SENT_PERMISSIONS` (or, for an operator run
namespaced, `NAMESPACED_SENT_PERMISSIONS`) for the RBAC coverage test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import kmock
import pytest

from support.kube_emulator import KubeEmulator, sent_permissions
from support.operator_harness import NAMESPACED_SENT_PERMISSIONS, RECMODELS, SENT_PERMISSIONS


@pytest.fixture
async def kube() -> AsyncIterator[KubeEmulator]:
    async with KubeEmulator() as emulator, kmock.Server(emulator):
        emulator.declare(RECMODELS, "RecModel", subresources=("status",))
        emulator.declare("v1/namespaces", "Namespace", namespaced=False)
        for resource, kind in (
            ("v1/configmaps", "ConfigMap"),
            ("v1/secrets", "Secret"),
            ("v1/services", "Service"),
            ("v1/pods", "Pod"),
            ("v1/events", "Event"),
            ("apps/v1/deployments", "Deployment"),
        ):
            emulator.declare(
                resource, kind, subresources=("status",) if kind in ("Deployment", "Pod") else ()
            )
        yield emulator
        sent = NAMESPACED_SENT_PERMISSIONS if emulator.namespaced_operator else SENT_PERMISSIONS
        sent.update(sent_permissions(emulator.requests))
