"""Observed state written straight to the database, as a sync would leave it, for tests that need no real
cluster: a cluster row, and applications each with one Deployment and its running, ready pods."""

from __future__ import annotations

from typing import Any


def cluster_row(name: str, server: str = "https://k.example", **credentials: str) -> Any:
    """A registered cluster nobody connects to (its credentials hold ``server`` and ``credentials``)."""
    from apps.clusters.crypto import encrypt
    from apps.clusters.models import Cluster

    return Cluster.objects.create(
        name=name, api_url=server, auth_mode="token", credentials=encrypt({"server": server, **credentials})
    )


def application_row(cluster: Any, namespace: str, name: str, pods: list[str], uid: str = "") -> Any:
    """Application ``name`` with Deployment ``<name>-w`` running ``pods`` (named ``<name>-<pod>``), all ready."""
    from apps.clusters.models import Application, Pod, Workload

    app = Application.objects.create(cluster=cluster, namespace=namespace, name=name)
    workload = Workload.objects.create(
        cluster=cluster,
        namespace=namespace,
        kind="Deployment",
        name=f"{name}-w",
        uid=f"u-{name}{uid}",
        application=app,
        desired_replicas=len(pods),
    )
    for pod in pods:
        Pod.objects.create(
            cluster=cluster,
            namespace=namespace,
            name=f"{name}-{pod}",
            uid=f"p-{name}-{pod}{uid}",
            workload=workload,
            application=app,
            phase="Running",
            ready=True,
        )
    return app
